"""Imputation metrics on held-out values only: MAE, RMSE and MRE (torchmetrics)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["MaskedMAE", "MaskedMRE", "MaskedRMSE"]


class _Masked(Metric):
    full_state_update = False
    abs_err: Tensor
    sq_err: Tensor
    abs_target: Tensor
    count: Tensor
    higher_is_better = False
    is_differentiable = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("abs_err", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sq_err", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("abs_target", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        """Accumulate over the entries where ``mask`` is true (``pred``, ``target``, ``mask``: same shape)."""
        if pred.shape != target.shape or mask.shape != pred.shape:
            raise ValueError(
                f"pred {tuple(pred.shape)}, target {tuple(target.shape)} and mask {tuple(mask.shape)} must match"
            )
        m = mask.bool()
        p, t = pred[m].double(), target[m].double()
        e = p - t
        # out-of-place: states may be inference tensors after a `trainer.validate` under inference mode
        self.abs_err = self.abs_err + e.abs().sum()
        self.sq_err = self.sq_err + (e * e).sum()
        self.abs_target = self.abs_target + t.abs().sum()
        self.count = self.count + m.sum()


class MaskedMAE(_Masked):
    """Mean absolute error over masked entries: ``sum|p - t| / n``."""

    def compute(self) -> Tensor:  # noqa: D102
        return self.abs_err / self.count.clamp_min(1)


class MaskedRMSE(_Masked):
    """Root mean squared error over masked entries: ``sqrt(sum (p - t)^2 / n)``."""

    def compute(self) -> Tensor:  # noqa: D102
        return (self.sq_err / self.count.clamp_min(1)).sqrt()


class MaskedMRE(_Masked):
    """Mean relative error as in SAITS: ``sum|p - t| / sum|t|`` over masked entries (a fraction, not %)."""

    def compute(self) -> Tensor:  # noqa: D102
        return self.abs_err / self.abs_target.clamp_min(1e-12)
