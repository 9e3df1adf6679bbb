"""Simple imputation baselines: training mean, training median, last observation carried forward.

They run on the same windows and hold-out as the model (``ImputationTask(baselines=True)`` logs them at
test time as ``test/baseline_<name>/<metric>``), so that a user can see what the model adds on their data.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["BASELINES", "baseline_imputations", "impute_locf", "training_median"]

#: Names of the baselines, in the order they are reported.
BASELINES = ("mean", "median", "locf")


def _fill_forward(x: Tensor) -> Tensor:
    """Forward-fill NaNs along dim 1 of ``(B, L, F)``; leading NaNs stay NaN."""
    length = x.shape[1]
    observed = ~torch.isnan(x)
    steps = torch.arange(length, device=x.device).view(1, length, 1).expand_as(x)
    last = torch.where(observed, steps, torch.full_like(steps, -1)).cummax(dim=1).values
    filled = x.gather(1, last.clamp(min=0))
    return torch.where(last >= 0, filled, torch.full_like(x, float("nan")))


def impute_locf(x: Tensor) -> Tensor:
    """Last observation carried forward within each window, leading gaps filled backward.

    Args:
        x: ``(B, L, F)`` with NaN where a value is missing or held out.

    Returns:
        ``(B, L, F)``; NaN only where a feature has no value at all in the window.
    """
    fwd = _fill_forward(x)
    bwd = _fill_forward(x.flip(1)).flip(1)
    return torch.where(torch.isnan(fwd), bwd, fwd)


def training_median(train: list[np.ndarray]) -> np.ndarray:
    """Per-feature median of the observed training values ``(F,)`` (on the original scale)."""
    flat = np.concatenate([a.reshape(-1, a.shape[-1]) for a in train]).astype(np.float64)
    return np.nanmedian(flat, axis=0)


def baseline_imputations(x: Tensor, median: Tensor | None = None) -> dict[str, Tensor]:
    """Impute standardised windows with each baseline.

    Args:
        x: ``(B, L, F)`` standardised values (training mean 0, std 1) with NaN where missing or held out.
        median: ``(F,)`` training median per feature on the standardised scale; ``None`` skips ``median``.

    Returns:
        ``{"mean": ..., "median": ..., "locf": ...}`` of ``(B, L, F)``: ``mean`` puts the training mean (0)
        in every gap, ``median`` the training median, ``locf`` the last observation of the same window
        (leading gaps: the next one; a feature with no value in the window: the training mean).
    """
    out = {"mean": torch.nan_to_num(x, nan=0.0)}
    if median is not None:
        out["median"] = torch.where(torch.isnan(x), median.to(x).view(1, 1, -1).expand_as(x), x)
    out["locf"] = torch.nan_to_num(impute_locf(x), nan=0.0)
    return out
