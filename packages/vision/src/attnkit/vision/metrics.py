"""Per-image segmentation metrics as torchmetrics (Dice, IoU, HD95), correct under DDP.

Each metric scores every image separately (mean over the foreground classes present in the image or
its prediction), keeps the sum of those scores and their count as ``sum``-reduced states, and returns
the mean over images -- the protocol of UCTransNet and most medical segmentation papers, and exact under
DDP (each image is counted once however the images are spread over processes).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor
from torchmetrics import Metric

__all__ = ["HausdorffDistance95", "PerImageDice", "PerImageIoU", "hd95", "per_image_scores"]


def _check(preds: Tensor, target: Tensor) -> None:
    if preds.shape != target.shape or preds.dim() != 3:
        raise ValueError(f"expected label maps preds and target of the same shape (B, H, W); got "
                         f"{tuple(preds.shape)} and {tuple(target.shape)} (take logits.argmax(1) first)")


def per_image_scores(preds: Tensor, target: Tensor, num_classes: int, kind: str) -> Tensor:
    """Dice or IoU per image ``(B,)``, averaged over foreground classes ``1..K-1``.

    A class absent from both prediction and target scores 1 (a correct empty prediction).
    """
    _check(preds, target)
    scores = []
    for c in range(1, num_classes):
        p, t = preds == c, target == c
        inter = (p & t).flatten(1).sum(1).double()
        ps, ts = p.flatten(1).sum(1).double(), t.flatten(1).sum(1).double()
        denom = ps + ts if kind == "dice" else ps + ts - inter
        num = 2 * inter if kind == "dice" else inter
        scores.append(torch.where(denom > 0, num / denom.clamp_min(1), torch.ones_like(denom)))
    return torch.stack(scores, 0).mean(0)


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(pred: np.ndarray, target: np.ndarray, spacing: tuple[float, ...] | None = None) -> float:
    """95th-percentile symmetric Hausdorff distance between two boolean masks (any dimensionality).

    ``max(P95(d(pred surface -> target surface)), P95(d(target -> pred)))`` as in MONAI. Both empty: 0.
    One empty: ``nan`` (callers decide; :class:`HausdorffDistance95` uses the image diagonal).
    """
    pred, target = pred.astype(bool), target.astype(bool)
    if not pred.any() and not target.any():
        return 0.0
    if not pred.any() or not target.any():
        return float("nan")
    sp, st = _surface(pred), _surface(target)
    dt_t = ndimage.distance_transform_edt(~st, sampling=spacing)
    dt_p = ndimage.distance_transform_edt(~sp, sampling=spacing)
    return float(max(np.percentile(dt_t[sp], 95), np.percentile(dt_p[st], 95)))


class _PerImageMean(Metric):
    is_differentiable = False
    full_state_update = False
    total: Tensor
    count: Tensor

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (background + foreground), got {num_classes}")
        self.num_classes = num_classes
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _scores(self, preds: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of label maps ``preds``, ``target`` of shape ``(B, H, W)``."""
        s = self._scores(preds, target)
        self.total += s.sum().to(self.total)
        self.count += s.numel()

    def compute(self) -> Tensor:
        """Mean over all images seen (on every process, under DDP)."""
        return (self.total / self.count.clamp_min(1)).float()


class PerImageDice(_PerImageMean):
    """Dice per image, mean over images. Args: num_classes (``K``, with background 0)."""

    higher_is_better = True

    def _scores(self, preds: Tensor, target: Tensor) -> Tensor:
        return per_image_scores(preds, target, self.num_classes, "dice")


class PerImageIoU(_PerImageMean):
    """IoU (Jaccard) per image, mean over images. Args: num_classes (``K``, with background 0)."""

    higher_is_better = True

    def _scores(self, preds: Tensor, target: Tensor) -> Tensor:
        return per_image_scores(preds, target, self.num_classes, "iou")


class HausdorffDistance95(_PerImageMean):
    """HD95 in pixels per image (mean over foreground classes), mean over images.

    A class present in only one of prediction and target scores the image diagonal (the largest
    possible distance); absent from both, it is skipped.
    """

    higher_is_better = False

    def _scores(self, preds: Tensor, target: Tensor) -> Tensor:
        _check(preds, target)
        p_np, t_np = preds.detach().cpu().numpy(), target.detach().cpu().numpy()
        diag = float(np.hypot(*p_np.shape[1:3]))
        out = []
        for p, t in zip(p_np, t_np, strict=True):
            vals = []
            for c in range(1, self.num_classes):
                pc, tc = p == c, t == c
                if not pc.any() and not tc.any():
                    continue
                d = hd95(pc, tc)
                vals.append(diag if np.isnan(d) else d)
            out.append(float(np.mean(vals)) if vals else 0.0)
        return torch.tensor(out, dtype=torch.float64)
