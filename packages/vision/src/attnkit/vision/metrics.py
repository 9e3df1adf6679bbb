"""Segmentation metrics as torchmetrics, correct under DDP: per-image Dice, IoU, HD95; pixel AUROC, AUPRC.

Dice, IoU and HD95 score every image separately (mean over the foreground classes present in the image or
its prediction), keep the sum of those scores and their count as ``sum``-reduced states, and return the
mean over images -- the protocol of UCTransNet and most medical segmentation papers, and exact under DDP
(each image is counted once however the images are spread over processes).

AUROC and AUPRC are pixel-level over the whole evaluation set (all valid pixels of all images pooled), the
convention of retinal-vessel benchmarks (DRIVE, STARE, CHASE_DB1). They keep per-class histograms of the
predicted log-odds (bounded memory, ``sum``-reduced) and integrate them at the end.

Target pixels equal to ``IGNORE_INDEX`` (``-1``: outside the field of view) count in no metric: they are
neither true nor false positives, and HD95 looks only at the valid pixels.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor
from torchmetrics import Metric

from attnkit.vision.data.formats import IGNORE_INDEX

__all__ = [
    "HausdorffDistance95",
    "PerImageDice",
    "PerImageIoU",
    "PixelAUPRC",
    "PixelAUROC",
    "auc_from_histograms",
    "hd95",
    "per_image_scores",
]


def _check(preds: Tensor, target: Tensor) -> None:
    if preds.shape != target.shape or preds.dim() != 3:
        raise ValueError(f"expected label maps preds and target of the same shape (B, H, W); got "
                         f"{tuple(preds.shape)} and {tuple(target.shape)} (take logits.argmax(1) first)")


def per_image_scores(preds: Tensor, target: Tensor, num_classes: int, kind: str) -> Tensor:
    """Dice or IoU per image ``(B,)``, averaged over foreground classes ``1..K-1``.

    A class absent from both prediction and target scores 1 (a correct empty prediction). Pixels where
    ``target`` is ``IGNORE_INDEX`` are left out.
    """
    _check(preds, target)
    valid = target != IGNORE_INDEX
    scores = []
    for c in range(1, num_classes):
        p, t = (preds == c) & valid, target == c
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
    possible distance); absent from both, it is skipped. Predictions at ignored pixels are dropped first.
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
                pc, tc = (p == c) & (t != IGNORE_INDEX), t == c
                if not pc.any() and not tc.any():
                    continue
                d = hd95(pc, tc)
                vals.append(diag if np.isnan(d) else d)
            out.append(float(np.mean(vals)) if vals else 0.0)
        return torch.tensor(out, dtype=torch.float64)


def auc_from_histograms(pos: Tensor, neg: Tensor) -> tuple[float, float]:
    """AUROC and average precision from score histograms (bins in increasing score order).

    Scores within one bin count as ties: AUROC gives such positive/negative pairs half credit (the
    trapezoid rule), and average precision ``sum_n (R_n - R_{n-1}) P_n`` takes one threshold per bin (as
    scikit-learn's ``average_precision_score`` does per distinct score).

    Args:
        pos: ``(N,)`` counts of positive pixels per bin.
        neg: ``(N,)`` counts of negative pixels per bin.

    Returns:
        ``(auroc, average_precision)``; ``nan`` where positives or negatives are missing.

    """
    tp = pos.flip(0).double().cumsum(0)  # thresholds from the highest bin down
    fp = neg.flip(0).double().cumsum(0)
    n_pos, n_neg = float(tp[-1]) if len(tp) else 0.0, float(fp[-1]) if len(fp) else 0.0
    if n_pos == 0 or n_neg == 0:
        return float("nan"), (float("nan") if n_pos == 0 else 1.0)
    tpr, fpr = tp / n_pos, fp / n_neg
    zero = tpr.new_zeros(1)
    tpr_prev, fpr_prev = torch.cat([zero, tpr[:-1]]), torch.cat([zero, fpr[:-1]])
    auroc = float(((fpr - fpr_prev) * (tpr + tpr_prev) / 2).sum())
    precision = tp / (tp + fp).clamp_min(1)
    ap = float(((tpr - tpr_prev) * precision).sum())
    return auroc, ap


class _PixelCurve(Metric):
    """Histograms of per-pixel log-odds for each foreground class, split by the true label."""

    is_differentiable = False
    full_state_update = False
    takes_logits: ClassVar[bool] = True  # update() wants logits (B, K, H, W), not label maps
    _column: ClassVar[int]  # 0: AUROC, 1: average precision (of auc_from_histograms)
    hist: Tensor

    def __init__(self, num_classes: int = 2, bins: int = 20000, limit: float = 20.0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (background + foreground), got {num_classes}")
        if bins < 2 or limit <= 0:
            raise ValueError(f"need bins >= 2 and limit > 0, got bins={bins}, limit={limit}")
        self.num_classes, self.bins, self.limit = num_classes, bins, limit
        self.add_state("hist", default=torch.zeros(num_classes - 1, 2, bins, dtype=torch.long),
                       dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Add logits ``(B, K, H, W)`` against targets ``(B, H, W)`` (``IGNORE_INDEX`` pixels skipped)."""
        if logits.dim() != 4 or logits.shape[1] != self.num_classes or target.shape != (
                logits.shape[0], *logits.shape[2:]):
            raise ValueError(f"expected logits (B, K={self.num_classes}, H, W) and target (B, H, W); got "
                             f"{tuple(logits.shape)} and {tuple(target.shape)}")
        valid = target != IGNORE_INDEX
        x = logits.float().movedim(1, -1)[valid]  # (P, K)
        t = target[valid]
        width = 2 * self.limit / self.bins
        for c in range(1, self.num_classes):
            others = torch.cat([x[:, :c], x[:, c + 1 :]], 1)
            log_odds = x[:, c] - others.logsumexp(1)  # log(p_c / (1 - p_c))
            idx = ((log_odds + self.limit) / width).floor().clamp(0, self.bins - 1).long()
            positive = (t == c).long()
            counts = torch.bincount(idx + positive * self.bins, minlength=2 * self.bins)
            self.hist[c - 1] += counts.view(2, self.bins).flip(0)  # row 0: positives, row 1: negatives

    def compute(self) -> Tensor:
        """Mean over the foreground classes where the value is defined (``nan`` where none is)."""
        vals = torch.tensor([auc_from_histograms(h[0], h[1])[self._column] for h in self.hist],
                            dtype=torch.float64)
        return vals.nanmean().float() if (~vals.isnan()).any() else torch.tensor(float("nan"))


class PixelAUROC(_PixelCurve):
    """Pixel-level area under the ROC curve over all valid pixels of all images (binned).

    Each foreground class is scored one-vs-rest by its log-odds ``log(p_c / (1 - p_c))``; the result is the
    mean over foreground classes with both positive and negative pixels (the single foreground class for
    binary tasks). Scores are binned in ``bins`` equal steps over ``[-limit, limit]`` log-odds (default 20000
    over ``[-20, 20]``: 0.002 wide; beyond the limits they share the end bins); pairs within one bin count as
    ties, so the value is exact up to such ties (within 1e-4 of scikit-learn's exact AUROC and 2e-4 of its
    average precision in the tests). Memory: ``(K - 1) * 2 * bins`` integers, whatever the number of pixels.

    Args:
        num_classes: ``K`` including background 0.
        bins: histogram bins.
        limit: log-odds range of the bins.

    """

    higher_is_better = True
    _column = 0


class PixelAUPRC(_PixelCurve):
    """Pixel-level average precision (area under the precision-recall curve), binned as :class:`PixelAUROC`.

    Mean over the foreground classes that have positive pixels. Args as :class:`PixelAUROC`.
    """

    higher_is_better = True
    _column = 1
