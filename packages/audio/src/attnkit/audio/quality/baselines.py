"""Score-free baselines for speech quality: the training mean and the per-database mean.

``SpeechQualityTask(baselines=True)`` logs them at test time next to the model, so that a user sees
what the model adds on their data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["quality_baselines"]


def _pcc(pred: Tensor, target: Tensor) -> Tensor:
    p, t = pred - pred.mean(0), target - target.mean(0)
    den = (p.square().sum(0) * t.square().sum(0)).sqrt()
    return torch.where(den > 0, (p * t).sum(0) / den.clamp(min=1e-30), torch.full_like(den, float("nan")))


def quality_baselines(train: Tensor, test: Tensor, test_groups: Sequence[str] | None = None) -> dict[str, Tensor]:
    """RMSE / PCC per score column of two constant predictors.

    Args:
        train: ``(N, K)`` training scores.
        test: ``(M, K)`` test scores.
        test_groups: the database (``split_column`` value) of each test row; ``None``: one database.

    Returns:
        ``{"train_mean/rmse": (K,), "dataset_mean/rmse": (K,), "dataset_mean/pcc": (K,)}``. ``train_mean``
        predicts the training mean for every file (its PCC is undefined: a constant). ``dataset_mean``
        predicts, for each file, the mean score of its own test database -- it uses the test labels, so it
        is the best any predictor that only knows the database can do; its PCC comes from differences
        between databases (NaN with one database).
    """
    train, test = train.double(), test.double()
    out = {"train_mean/rmse": (test - train.mean(0)).square().mean(0).sqrt()}
    groups = list(test_groups) if test_groups is not None else [""] * len(test)
    pred = torch.empty_like(test)
    for g in set(groups):
        rows = torch.tensor([i for i, x in enumerate(groups) if x == g])
        pred[rows] = test[rows].mean(0)
    out["dataset_mean/rmse"] = (test - pred).square().mean(0).sqrt()
    out["dataset_mean/pcc"] = _pcc(pred, test)
    return {k: v.float() for k, v in out.items()}
