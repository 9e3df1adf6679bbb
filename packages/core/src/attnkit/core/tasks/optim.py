"""The one ``configure_optimizers`` body every attnkit task shares, and per-step warm-up schedules."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["WarmupConstantLR", "WarmupCosineLR", "build_optimization"]


class WarmupConstantLR(LRScheduler):
    """Linear warm-up from ``peak / warmup_steps`` to the peak over ``warmup_steps`` optimiser steps, then the peak.

    For a model that needs a gentle start at a rate it then keeps (Adam's first steps, before its second-moment
    estimates settle, are the largest relative to the weights): the rate does not depend on the length of
    training, so a run can be resumed to a longer budget and is the same run. ``TransDAE`` on DRIVE trains with
    20 warm-up steps to AdamW 2e-3 (docs/vision.md, issue #16)::

        scheduler:
          class_path: attnkit.core.tasks.WarmupConstantLR
          init_args: {warmup_steps: 20}

    Args:
        optimizer: the optimiser.
        warmup_steps: steps of linear warm-up (0: the peak from the first step).
        last_epoch: index of the last step, when resuming by hand (Lightning restores the state itself).

    Raises:
        ValueError: ``warmup_steps < 0``.

    :class:`WarmupCosineLR` is this warm-up followed by a cosine instead of the peak.
    """

    interval = "step"  # read by build_optimization: Lightning steps this scheduler after every optimiser step

    def __init__(self, optimizer: Optimizer, warmup_steps: int = 0, last_epoch: int = -1) -> None:
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = int(warmup_steps)
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """Multiplier of the peak rate after ``step`` optimiser steps."""
        return (step + 1) / self.warmup_steps if step < self.warmup_steps else 1.0

    def get_lr(self) -> list[float | Tensor]:  # noqa: D102
        f = self.factor(max(self.last_epoch, 0))
        return [base * f for base in self.base_lrs]


class WarmupCosineLR(WarmupConstantLR):
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` of the peak at the end of training; per step.

    The length of training is whatever the trainer will run (``max_epochs`` / ``max_steps`` / ``limit_train_
    batches``): attnkit tasks call :meth:`set_total_steps` with Lightning's ``estimated_stepping_batches``
    before the first step, so a config only states the shape::

        scheduler:
          class_path: attnkit.core.tasks.WarmupCosineLR
          init_args: {warmup_steps: 240}

    Args:
        optimizer: the optimiser.
        warmup_steps: steps of linear warm-up from ``peak / warmup_steps`` to the peak (0: none).
        total_steps: steps over which the cosine reaches its floor (``None``: set by the task; until then the
            rate stays at the peak after the warm-up).
        min_lr_ratio: the floor, as a fraction of each group's peak rate.
        last_epoch: index of the last step, when resuming by hand (Lightning restores the state itself).

    Raises:
        ValueError: ``warmup_steps < 0``, ``min_lr_ratio`` outside ``[0, 1]`` or ``total_steps <= warmup_steps``.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int = 0, total_steps: int | None = None,
                 min_lr_ratio: float = 0.0, last_epoch: int = -1) -> None:
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
        if total_steps is not None and total_steps <= warmup_steps:
            raise ValueError(
                f"WarmupCosineLR: training runs {total_steps} steps, not more than warmup_steps="
                f"{warmup_steps}; shorten the warm-up or train longer"
            )
        self.min_lr_ratio = float(min_lr_ratio)
        self.total_steps: int | None = None if total_steps is None else int(total_steps)
        super().__init__(optimizer, warmup_steps, last_epoch)

    def set_total_steps(self, total_steps: int | float) -> None:
        """Fix the length of the cosine (called by the task with the trainer's estimated steps).

        A run shorter than the warm-up (``fast_dev_run``, ``limit_train_batches``) warms up over a tenth of
        its steps instead, with a warning.
        """
        if not math.isfinite(total_steps):
            raise ValueError("WarmupCosineLR needs a finite training length: set trainer.max_epochs or max_steps")
        total = int(total_steps)
        if total <= self.warmup_steps:  # a short debugging run (fast_dev_run, limit_train_batches)
            shorter = total // 10
            warnings.warn(f"WarmupCosineLR: training runs {total} steps, not more than warmup_steps="
                          f"{self.warmup_steps}; warming up over {shorter} steps instead", stacklevel=2)
            self.warmup_steps = shorter
        self.total_steps = total
        self._last_lr = self.get_lr()  # the current step's rate under the new shape
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            group["lr"] = lr

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a saved schedule; warn when it spans another length than the run it resumes into.

        Lightning restores the checkpoint's state after the task has set this run's length, so a run resumed
        with another ``max_steps`` / ``max_epochs`` keeps the saved cosine: past its end every step runs at the
        floor rate.
        """
        planned = self.total_steps
        super().load_state_dict(state_dict)
        if planned is not None and self.total_steps is not None and planned != self.total_steps:
            warnings.warn(f"WarmupCosineLR: the checkpoint's cosine spans {self.total_steps} steps but this run "
                          f"trains {planned}; it keeps the checkpoint's, so steps past {self.total_steps} run at "
                          f"min_lr_ratio={self.min_lr_ratio} of the peak. Resume with the checkpoint's length, or "
                          "start a fresh run for a new one", stacklevel=2)

    def factor(self, step: int) -> float:
        """Multiplier of the peak rate after ``step`` optimiser steps."""
        if step < self.warmup_steps or self.total_steps is None:
            return super().factor(step)
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimization(
    params: Iterable[nn.Parameter],
    optimizer: OptimizerCallable,
    scheduler: LRSchedulerCallable | None = None,
    monitor: str | None = None,
    total_steps: Callable[[], float] | None = None,
) -> Any:
    """What a task's ``configure_optimizers`` returns.

    Args:
        params: parameters to optimise.
        optimizer: builds the optimiser from the parameters.
        scheduler: builds an LR scheduler from the optimiser (optional).
        monitor: logged metric a ``ReduceLROnPlateau`` scheduler watches (ignored by other schedulers).
        total_steps: the length of training in optimiser steps, asked only when the scheduler wants it: one
            built with ``total_steps=None`` that has ``set_total_steps`` (:class:`WarmupCosineLR`).

    Returns:
        The optimiser alone, or Lightning's ``{"optimizer", "lr_scheduler"}`` dict.
    """
    opt = optimizer(params)
    if scheduler is None:
        return opt
    sched = scheduler(opt)
    if total_steps is not None and getattr(sched, "total_steps", 0) is None and hasattr(sched, "set_total_steps"):
        sched.set_total_steps(total_steps())
    # a scheduler that declares interval = "step" is stepped after every optimiser step, others once per epoch
    config: dict[str, Any] = {"scheduler": sched, "interval": getattr(sched, "interval", "epoch")}
    if monitor is not None:
        config["monitor"] = monitor
    return {"optimizer": opt, "lr_scheduler": config}
