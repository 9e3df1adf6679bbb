"""Segmentation losses on logits ``(B, K, H, W)`` and integer targets ``(B, H, W)``.

Target pixels equal to :data:`~attnkit.vision.data.formats.IGNORE_INDEX` (``-1``: outside the field of
view, or a mask's ``ignore_value``) contribute nothing to any loss, nor to its gradient.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnkit.vision.data.formats import IGNORE_INDEX

__all__ = ["LossName", "SegmentationLoss", "cross_entropy", "dice_loss", "focal_loss", "tversky_loss"]

LossName = Literal["dice_ce", "ce", "dice", "focal", "tversky", "focal_tversky"]


def _check(logits: Tensor, target: Tensor) -> None:
    if logits.dim() != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"expected logits (B, K, H, W) and target (B, H, W); got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")


def _probs_onehot(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Softmax ``(B, K, H, W)`` and one-hot target, both zero at ignored pixels."""
    _check(logits, target)
    k = logits.shape[1]
    probs = logits.float().softmax(1)
    onehot = F.one_hot(target.long().clamp(0, k - 1), k).permute(0, 3, 1, 2).to(probs.dtype)
    valid = (target != IGNORE_INDEX).unsqueeze(1).to(probs.dtype)
    return probs * valid, onehot * valid


def _pixel_mean(per_pixel: Tensor, target: Tensor) -> Tensor:
    """Mean of ``per_pixel (B, H, W)`` over the pixels that are not ignored (0 when none is)."""
    valid = target != IGNORE_INDEX
    return (per_pixel * valid).sum() / valid.sum().clamp_min(1)


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy, mean over the pixels that are not ignored (0 when all are)."""
    _check(logits, target)
    # the mean reduction itself skips ignored pixels (the same arithmetic as without any); it is nan only when
    # all are ignored, and those get no gradient, so selecting 0 then is safe (and needs no host sync)
    ce = F.cross_entropy(logits.float(), target.long(), ignore_index=IGNORE_INDEX)
    return torch.where((target != IGNORE_INDEX).any(), ce, torch.zeros_like(ce))


def tversky_loss(logits: Tensor, target: Tensor, *, alpha: float = 0.5, beta: float = 0.5,
                 gamma: float = 1.0, smooth: float = 1.0, include_background: bool = False) -> Tensor:
    """Soft Tversky loss ``(1 - TI) ** gamma`` averaged over classes; ``alpha = beta = 0.5`` is Dice.

    Sums run over the whole batch per class (batch Dice), which is stable with empty patches.

    Args:
        logits: ``(B, K, H, W)``.
        target: ``(B, H, W)`` class indices.
        alpha: weight of false positives.
        beta: weight of false negatives.
        gamma: focal exponent (``> 1`` focuses on hard classes).
        smooth: additive smoothing.
        include_background: also score class 0.

    """
    probs, onehot = _probs_onehot(logits, target)
    if not include_background and probs.shape[1] > 1:
        probs, onehot = probs[:, 1:], onehot[:, 1:]
    dims = (0, 2, 3)
    tp = (probs * onehot).sum(dims)
    # sum(probs * (1 - onehot)) and sum((1 - probs) * onehot) without their two full-size products; probs and
    # onehot are 0 at ignored pixels: no fp, no fn there
    fp = probs.sum(dims) - tp
    fn = onehot.sum(dims) - tp
    ti = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    return ((1 - ti) ** gamma).mean()


def dice_loss(logits: Tensor, target: Tensor, *, smooth: float = 1.0,
              include_background: bool = False) -> Tensor:
    """Soft Dice loss over the foreground classes (see :func:`tversky_loss`)."""
    return tversky_loss(logits, target, smooth=smooth, include_background=include_background)


def focal_loss(logits: Tensor, target: Tensor, *, gamma: float = 2.0) -> Tensor:
    """Multi-class focal loss (Lin et al. 2017), mean over the pixels that are not ignored."""
    _check(logits, target)
    logp = F.log_softmax(logits.float(), dim=1)
    logpt = logp.gather(1, target.long().clamp_min(0).unsqueeze(1)).squeeze(1)
    return _pixel_mean(-((1 - logpt.exp()) ** gamma) * logpt, target)


class SegmentationLoss(nn.Module):
    """The loss a :class:`~attnkit.vision.SegmentationTask` trains with.

    Args:
        name: ``"dice_ce"`` (Dice + cross-entropy, the default), ``"ce"``, ``"dice"``, ``"focal"``,
            ``"tversky"`` or ``"focal_tversky"``.
        dice_weight: weight of the Dice term in ``"dice_ce"`` (CE has weight 1).
        tversky_alpha: false-positive weight of the Tversky losses.
        tversky_beta: false-negative weight of the Tversky losses.
        focal_gamma: exponent of the focal losses.

    Shapes:
        ``logits (B, K, H, W)``, ``target (B, H, W)`` -> scalar.

    """

    def __init__(self, name: LossName = "dice_ce", *, dice_weight: float = 1.0, tversky_alpha: float = 0.3,
                 tversky_beta: float = 0.7, focal_gamma: float = 2.0) -> None:
        super().__init__()
        if name not in ("dice_ce", "ce", "dice", "focal", "tversky", "focal_tversky"):
            raise ValueError(f"unknown loss {name!r}; choose dice_ce, ce, dice, focal, tversky or "
                             "focal_tversky")
        self.name = name
        self.dice_weight, self.gamma = dice_weight, focal_gamma
        self.alpha, self.beta = tversky_alpha, tversky_beta

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Scalar loss."""
        if self.name == "ce":
            return cross_entropy(logits, target)
        if self.name == "dice":
            return dice_loss(logits, target)
        if self.name == "dice_ce":
            ce = cross_entropy(logits, target)
            return ce + self.dice_weight * dice_loss(logits, target)
        if self.name == "focal":
            return focal_loss(logits, target, gamma=self.gamma)
        gamma = 1.0 if self.name == "tversky" else 4.0 / 3.0  # focal Tversky (Abraham & Khan 2019)
        return tversky_loss(logits, target, alpha=self.alpha, beta=self.beta, gamma=gamma)
