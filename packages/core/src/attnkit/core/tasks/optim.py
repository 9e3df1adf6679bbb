"""The one ``configure_optimizers`` body every attnkit task shares."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

__all__ = ["build_optimization"]


def build_optimization(
    params: Iterable[nn.Parameter],
    optimizer: OptimizerCallable,
    scheduler: LRSchedulerCallable | None = None,
    monitor: str | None = None,
) -> Any:
    """What a task's ``configure_optimizers`` returns.

    Args:
        params: parameters to optimise.
        optimizer: builds the optimiser from the parameters.
        scheduler: builds an LR scheduler from the optimiser (optional).
        monitor: logged metric a ``ReduceLROnPlateau`` scheduler watches (ignored by other schedulers).

    Returns:
        The optimiser alone, or Lightning's ``{"optimizer", "lr_scheduler"}`` dict.
    """
    opt = optimizer(params)
    if scheduler is None:
        return opt
    config: dict[str, Any] = {"scheduler": scheduler(opt)}
    if monitor is not None:
        config["monitor"] = monitor
    return {"optimizer": opt, "lr_scheduler": config}
