"""SegmentationTask: trains and evaluates any segmentation model (attention U-Nets, smp baselines)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import Metric

from attnkit.core.tasks.base import Task
from attnkit.vision.inference import sliding_window_inference
from attnkit.vision.losses import LossName, SegmentationLoss
from attnkit.vision.metrics import HausdorffDistance95, PerImageDice, PerImageIoU, PixelAUPRC, PixelAUROC
from attnkit.vision.writers import ProbabilityFormat, write_segmentation

__all__ = ["SegmentationTask", "overlay"]

MemoryFormat = Literal["channels_last", "contiguous"]

_PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255],
                     [0, 255, 255], [255, 128, 0]], dtype=np.uint8)


def overlay(raw: np.ndarray, labels: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Colour the predicted classes over an image.

    Args:
        raw: ``uint8 (C, H, W)`` image, ``C`` 1 or 3.
        labels: ``(H, W)`` class indices.
        alpha: opacity of the class colours.

    Returns:
        ``uint8 (H, W, 3)``.

    """
    rgb = np.repeat(raw, 3, 0) if raw.shape[0] == 1 else raw[:3]
    rgb = rgb.transpose(1, 2, 0).astype(np.float32)
    colours = _PALETTE[labels % len(_PALETTE)].astype(np.float32)
    fg = (labels > 0)[..., None]
    out = np.where(fg, (1 - alpha) * rgb + alpha * colours, rgb)
    return out.clip(0, 255).astype(np.uint8)


class SegmentationTask(Task):
    """Trains a segmentation model on patches and evaluates whole images with sliding windows.

    Models map ``(B, C, H, W)`` images to ``(B, K, H, W)`` logits. A model with a ``forward_with_aux``
    method (e.g. :class:`~attnkit.vision.MSGANet`) also returns deep-supervision logits and extra loss
    terms in training, which are added with the weights below.

    Args:
        model: the network (``UTransformer``, ``MSGANet``, ``segmentation_models_pytorch.Unet``, ...).
        num_classes: ``K`` including background 0 (linked from the data module by the CLI).
        loss: ``"dice_ce"`` (default), ``"ce"``, ``"dice"``, ``"focal"``, ``"tversky"``, ``"focal_tversky"``.
        dice_weight: Dice weight in ``dice_ce``.
        focal_gamma: focal exponent.
        tversky_alpha: Tversky false-positive weight.
        tversky_beta: Tversky false-negative weight.
        deep_supervision_weight: weight of the mean loss over a model's auxiliary logits.
        aux_weight: weight of a model's own auxiliary losses (guiding / reconstruction losses of MSGANet).
        patch_size: sliding-window size for validation, test and prediction (``None``: whole image, padded
            to ``pad_multiple``).
        overlap: sliding-window overlap.
        sw_batch_size: windows per forward pass.
        pad_multiple: whole-image inference pads to a multiple of this (the encoder stride).
        output_dir: where ``predict`` writes ``<name>_mask.png``, ``<name>_overlay.png`` and the
            probabilities (see :func:`~attnkit.vision.writers.write_segmentation`); default
            ``<run>/predictions/``.
        save_probabilities: probability maps ``predict`` writes: ``"png"`` (16-bit), ``"npy"``, ``"tif"``
            (float32) or ``"none"``.
        memory_format: layout of the model's convolution weights and of every input it sees.
            ``"channels_last"`` (NHWC; default): the same function, and on a 1-thread AVX-512 CPU 1.43x the
            training and 1.35x the inference speed for the smp U-Net, 1.05-1.43x for attnkit's attention U-Nets
            (docs/benchmarks.md); the usual choice on GPUs for convolutions under mixed precision too.
            ``"contiguous"``: PyTorch's default NCHW layout.
        optimizer: builds the optimiser.
        scheduler: builds the learning-rate scheduler (optional).

    """

    cli_links: ClassVar[dict[str, str]] = {"num_classes": "num_classes"}
    monitor: ClassVar[str] = "val/dice"
    monitor_mode: ClassVar[Literal["min", "max"]] = "max"

    def __init__(
        self,
        model: nn.Module,
        num_classes: int = 2,
        loss: LossName = "dice_ce",
        dice_weight: float = 1.0,
        focal_gamma: float = 2.0,
        tversky_alpha: float = 0.3,
        tversky_beta: float = 0.7,
        deep_supervision_weight: float = 1.0,
        aux_weight: float = 0.25,
        patch_size: int | None = 256,
        overlap: float = 0.25,
        sw_batch_size: int = 4,
        pad_multiple: int = 32,
        output_dir: str | None = None,
        save_probabilities: ProbabilityFormat = "png",
        memory_format: MemoryFormat = "channels_last",
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        if memory_format not in ("channels_last", "contiguous"):
            raise ValueError(f"memory_format must be 'channels_last' or 'contiguous', got {memory_format!r}")
        super().__init__(model, optimizer, scheduler)
        self.memory_format: MemoryFormat = memory_format
        if memory_format == "channels_last":
            with torch.no_grad():  # 4-D weights only (convolutions); Module.to would also reach 5-D ones
                for p in self.model.parameters():
                    if p.dim() == 4:
                        p.data = p.data.contiguous(memory_format=torch.channels_last)
        self.num_classes = num_classes
        self.criterion = SegmentationLoss(loss, dice_weight=dice_weight, tversky_alpha=tversky_alpha,
                                          tversky_beta=tversky_beta, focal_gamma=focal_gamma)
        self.deep_supervision_weight, self.aux_weight = deep_supervision_weight, aux_weight
        self.patch_size, self.overlap, self.sw_batch_size = patch_size, overlap, sw_batch_size
        self.pad_multiple, self.output_dir = pad_multiple, output_dir
        if output_dir is not None:
            self._prediction_dir = Path(output_dir)
        self.save_probabilities: ProbabilityFormat = save_probabilities
        self.metrics = nn.ModuleDict({
            stage: nn.ModuleDict({"dice": PerImageDice(num_classes), "iou": PerImageIoU(num_classes),
                                  "hd95": HausdorffDistance95(num_classes), "auroc": PixelAUROC(num_classes),
                                  "auprc": PixelAUPRC(num_classes)})
            for stage in ("val", "test")
        })
        # a metric object (sum of losses and of samples across processes): exact under DDP, where
        # `sync_dist` averages counts in integers and does not split uneven shares exactly

    def _layout(self, x: Tensor) -> Tensor:
        if self.memory_format == "channels_last" and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, K, H, W)`` of the model on images ``(B, C, H, W)``."""
        y = self.model(self._layout(x))
        if y.dim() != 4 or y.shape[1] != self.num_classes:
            raise ValueError(f"the model returned {tuple(y.shape)}, expected "
                             f"(B, num_classes={self.num_classes}, H, W); set the model's number of classes "
                             "(num_classes / classes) to match")
        return y

    @torch.no_grad()
    def predict_logits(self, image: Tensor) -> Tensor:
        """Logits ``(B, K, H, W)`` for whole images of any size (sliding window or padding)."""
        if self.patch_size is not None:
            return sliding_window_inference(image, self, self.patch_size, overlap=self.overlap,
                                            batch_size=self.sw_batch_size)
        h, w = image.shape[-2:]
        m = self.pad_multiple
        ph, pw = (-h) % m, (-w) % m
        x = F.pad(image, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
        return self(x)[..., :h, :w].float()

    def forward_batch(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits on a training batch of patches (for :class:`~attnkit.core.tasks.PreciseBatchNorm`)."""
        return self(batch["image"])

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Loss on a batch of patches ``image (B, C, h, w)``, ``mask (B, h, w)``."""
        x, y = batch["image"], batch["mask"]
        forward_with_aux = getattr(self.model, "forward_with_aux", None)
        if forward_with_aux is not None:
            logits, aux_logits, aux_losses = forward_with_aux(self._layout(x))
        else:
            logits, aux_logits, aux_losses = self(x), [], {}
        seg = self.criterion(logits, y)
        loss = seg
        if aux_logits:
            ds = torch.stack([self.criterion(a, y) for a in aux_logits]).mean()
            loss = loss + self.deep_supervision_weight * ds
            self.log("train/deep_supervision", ds)
        for name, value in aux_losses.items():
            loss = loss + self.aux_weight * value
            self.log(f"train/{name}", value)
        self.log("train/seg_loss", seg)
        self.log_loss("train", loss, x.shape[0])
        return loss

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        images = batch["image"] if isinstance(batch["image"], list) else list(batch["image"])
        masks = batch["mask"] if isinstance(batch["mask"], list) else list(batch["mask"])
        for image, mask in zip(images, masks, strict=True):
            target = mask[None].long()
            logits = _to_size(self.predict_logits(image[None]), target.shape[-2:])
            self.log_loss(stage, self.criterion(logits, target), batch_size=1)
            preds = logits.argmax(1)
            metrics = cast(nn.ModuleDict, self.metrics[stage])
            for name, module in metrics.items():
                metric = cast(Metric, module)
                metric.update(logits if getattr(metric, "takes_logits", False) else preds, target)
                self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, batch_size=1)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Dice, IoU, HD95, AUROC, AUPRC and loss on whole validation images."""
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Dice, IoU, HD95, AUROC, AUPRC and loss on whole test images."""
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Predict whole images; write ``<name>_mask.png``, probabilities and ``<name>_overlay.png``."""
        from PIL import Image

        out_dir = self.prediction_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        images = batch["image"] if isinstance(batch["image"], list) else list(batch["image"])
        results = []
        for image, raw, name in zip(images, batch["raw"], batch["name"], strict=True):
            probs = _to_size(self.predict_logits(image[None]), raw.shape[-2:]).softmax(1)[0]
            labels = probs.argmax(0).cpu().numpy().astype(np.uint8)
            safe = str(name).replace("#", "_z")
            written = write_segmentation(out_dir / safe, probs, prob_format=self.save_probabilities)
            overlay_path = out_dir / f"{safe}_overlay.png"
            Image.fromarray(overlay(np.asarray(raw), labels)).save(overlay_path)
            results.append({"name": name, **written, "overlay": str(overlay_path)})
        return results

    def write_predictions(self, predictions: Sequence[Any], directory: Path, suffix: str = "") -> list[Path]:
        """The images were written by :meth:`predict_step`; add ``index{suffix}.csv`` naming each one's files."""
        rows = [r for batch in predictions for r in (batch or [])]
        if not rows:
            return []
        columns = list(dict.fromkeys(k for r in rows for k in r))
        path = directory / f"index{suffix}.csv"
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows({k: (Path(v).name if k != "name" and isinstance(v, str) else v) for k, v in r.items()}
                        for r in rows)
        return [path]


def _to_size(logits: Tensor, size: Sequence[int]) -> Tensor:
    """Logits resampled (bilinear) to ``size`` where the model saw a rescaled image (the data's ``scale``)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
