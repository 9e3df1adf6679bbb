"""The shared configure_optimizers body."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from attnkit.core.tasks.optim import build_optimization


def test_optimizer_alone_without_scheduler() -> None:
    params = list(nn.Linear(2, 2).parameters())
    out = build_optimization(params, partial(torch.optim.SGD, lr=0.1))
    assert isinstance(out, torch.optim.SGD)


def test_plateau_scheduler_gets_the_monitored_metric() -> None:
    params = list(nn.Linear(2, 2).parameters())
    out = build_optimization(params, partial(torch.optim.SGD, lr=0.1),
                             partial(torch.optim.lr_scheduler.ReduceLROnPlateau, mode="max"), "val/acc")
    assert isinstance(out["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert out["lr_scheduler"]["monitor"] == "val/acc"
    assert out["lr_scheduler"]["scheduler"].optimizer is out["optimizer"]
