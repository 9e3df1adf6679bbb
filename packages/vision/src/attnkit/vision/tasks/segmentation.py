"""SegmentationTask: trains and evaluates any segmentation model (attention U-Nets, smp baselines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric

from attnkit.core.tasks.optim import build_optimization
from attnkit.vision.inference import sliding_window_inference
from attnkit.vision.losses import LossName, SegmentationLoss
from attnkit.vision.metrics import HausdorffDistance95, PerImageDice, PerImageIoU

__all__ = ["SegmentationTask", "overlay"]

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


class SegmentationTask(LightningModule):
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
        output_dir: where ``predict`` writes ``<name>_mask.png`` and ``<name>_overlay.png``.
        optimizer: builds the optimiser.
        scheduler: builds the learning-rate scheduler (optional).

    """

    cli_links: ClassVar[dict[str, str]] = {"num_classes": "num_classes"}
    monitor: ClassVar[str] = "val/dice"
    monitor_mode: ClassVar[str] = "max"

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
        output_dir: str = "predictions",
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"])
        self.model = model
        self.num_classes = num_classes
        self.criterion = SegmentationLoss(loss, dice_weight=dice_weight, tversky_alpha=tversky_alpha,
                                          tversky_beta=tversky_beta, focal_gamma=focal_gamma)
        self.deep_supervision_weight, self.aux_weight = deep_supervision_weight, aux_weight
        self.patch_size, self.overlap, self.sw_batch_size = patch_size, overlap, sw_batch_size
        self.pad_multiple, self.output_dir = pad_multiple, output_dir
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.metrics = nn.ModuleDict({
            stage: nn.ModuleDict({"dice": PerImageDice(num_classes), "iou": PerImageIoU(num_classes),
                                  "hd95": HausdorffDistance95(num_classes)})
            for stage in ("val", "test")
        })
        # a metric object (sum of losses and of samples across processes): exact under DDP, where
        # `sync_dist` averages counts in integers and does not split uneven shares exactly
        self.loss_mean = nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, K, H, W)`` of the model on images ``(B, C, H, W)``."""
        y = self.model(x)
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

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Loss on a batch of patches ``image (B, C, h, w)``, ``mask (B, h, w)``."""
        x, y = batch["image"], batch["mask"]
        forward_with_aux = getattr(self.model, "forward_with_aux", None)
        if forward_with_aux is not None:
            logits, aux_logits, aux_losses = forward_with_aux(x)
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
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        images = batch["image"] if isinstance(batch["image"], list) else list(batch["image"])
        masks = batch["mask"] if isinstance(batch["mask"], list) else list(batch["mask"])
        for image, mask in zip(images, masks, strict=True):
            logits = self.predict_logits(image[None])
            target = mask[None].long()
            loss_mean = cast(MeanMetric, self.loss_mean[stage])
            loss_mean.update(self.criterion(logits, target).detach())
            self.log(f"{stage}/loss", loss_mean, on_step=False, on_epoch=True, batch_size=1)
            preds = logits.argmax(1)
            metrics = cast(nn.ModuleDict, self.metrics[stage])
            for name, module in metrics.items():
                metric = cast(Metric, module)
                metric.update(preds, target)
                self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, batch_size=1)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Dice, IoU, HD95 and loss on whole validation images."""
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Dice, IoU, HD95 and loss on whole test images."""
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Predict whole images and write ``<name>_mask.png`` and ``<name>_overlay.png`` to ``output_dir``."""
        from PIL import Image

        out_dir = Path(self.output_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        images = batch["image"] if isinstance(batch["image"], list) else list(batch["image"])
        results = []
        for image, raw, name in zip(images, batch["raw"], batch["name"], strict=True):
            labels = self.predict_logits(image[None]).argmax(1)[0].cpu().numpy().astype(np.uint8)
            stored = labels * 255 if self.num_classes == 2 else labels
            safe = str(name).replace("#", "_z")
            mask_path, overlay_path = out_dir / f"{safe}_mask.png", out_dir / f"{safe}_overlay.png"
            Image.fromarray(stored).save(mask_path)
            Image.fromarray(overlay(np.asarray(raw), labels)).save(overlay_path)
            results.append({"name": name, "mask": str(mask_path), "overlay": str(overlay_path)})
        return results

    def configure_optimizers(self) -> Any:
        """Build the optimiser (and scheduler) from the callables."""
        return build_optimization(self.parameters(), self.optimizer_factory, self.scheduler_factory, self.monitor)
