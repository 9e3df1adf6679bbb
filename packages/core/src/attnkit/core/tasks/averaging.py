"""An exponential moving average of the weights that validation, testing and checkpoints use (EMA)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor

from attnkit.core.tasks.batch_norm import PreciseBatchNorm, mark_last_stale

__all__ = ["EMAWeights"]


def ema_update(decay: float, warmup: bool) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    """The in-place update ``avg <- d avg + (1 - d) w`` for :class:`torch.optim.swa_utils.AveragedModel`.

    ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates with ``warmup`` (else ``decay``). Tensors that
    are not floating point (a batch norm's ``num_batches_tracked``) are copied.
    """

    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        n = int(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n)) if warmup else decay
        for avg, cur in zip(averaged, current, strict=True):
            if avg.is_floating_point():
                avg.lerp_(cur, 1.0 - d)
            else:
                avg.copy_(cur)

    return update


class EMAWeights(WeightAveraging):
    """Keep an exponential moving average (EMA) of the weights; validate, test and save the average.

    After every ``every_n_steps``-th optimiser step, ``avg <- d avg + (1 - d) w`` for every parameter and
    buffer, the first update copying the weights. With ``warmup`` (the default) ``d = min(decay, (1 + n) /
    (10 + n))`` after ``n`` updates, as in timm's and TensorFlow's EMA: the average then spans about the last
    tenth of training whatever its length (until ``n`` reaches 8,990 for ``decay=0.999``), so it is usable at
    100 steps as at 10,000 and needs no tuning to the budget; ``warmup=False`` uses ``decay`` from the start.

    What changes (on top of Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging`):

    - Validation inside ``fit`` runs on the average. With :class:`~attnkit.core.tasks.PreciseBatchNorm` among
      the callbacks, the batch-norm statistics are re-estimated for the averaged weights (not the trained
      ones) before each validation and when training ends.
    - Checkpoints hold the average as ``state_dict`` (so ``attnkit test``/``predict`` and
      ``load_from_checkpoint`` evaluate it) and the trained weights as ``current_model_state``; resuming
      with this callback restores both, and training continues from the trained weights exactly as an
      uninterrupted run would. After ``fit`` the module holds the average.
    - Testing or predicting from a checkpoint with the callback in the config does not warn.

    In a config::

        trainer:
          callbacks:
            - class_path: attnkit.core.tasks.EMAWeights
              init_args: {decay: 0.999}

    Args:
        decay: the largest (final) decay.
        warmup: ramp the decay up as ``(1 + n) / (10 + n)``.
        every_n_steps: update after every this many optimiser steps.
        device: where the average lives (``None``: beside the model; ``"cpu"`` saves accelerator memory).

    Raises:
        ValueError: ``decay`` outside ``[0, 1)`` or ``every_n_steps < 1``.
    """

    recalibrates_batch_norm = True  # read by PreciseBatchNorm: its statistics go to the averaged weights

    def __init__(self, decay: float = 0.999, warmup: bool = True, every_n_steps: int = 1,
                 device: str | None = None) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMAWeights: decay must be in [0, 1), got {decay}")
        if every_n_steps < 1:
            raise ValueError(f"EMAWeights: every_n_steps must be >= 1, got {every_n_steps}")
        super().__init__(device=device, use_buffers=True, multi_avg_fn=ema_update(decay, warmup))
        self.decay, self.warmup, self.every_n_steps = decay, warmup, every_n_steps
        self._trained: dict[str, Tensor] | None = None  # the trained weights, once the module holds the average

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """After every ``every_n_steps``-th optimiser step (``step_idx`` is zero-based); never per epoch."""
        return step_idx is not None and (step_idx + 1) % self.every_n_steps == 0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._trained = None

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Swap the average in; re-estimate its batch-norm statistics when PreciseBatchNorm is used."""
        super().on_validation_epoch_start(trainer, pl_module)
        if self._average_model is not None and not trainer.sanity_checking:
            _recalibrate(trainer, pl_module, before_validation=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Leave the average in the module (its batch-norm statistics re-estimated) and keep the trained weights."""
        if self._average_model is None:
            return
        self._trained = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        self._copy_average_to_current(pl_module)
        if _recalibrate(trainer, pl_module):
            # the average keeps the statistics that go with it, for the checkpoint written after this
            for avg, cur in zip(self._average_model.module.buffers(), pl_module.buffers(), strict=True):
                avg.detach().copy_(cur.detach())
        mark_last_stale(trainer)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """``state_dict``: the average; ``current_model_state``: the trained weights (also after ``fit``)."""
        if self._trained is None or self._average_model is None:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)
            return
        # after on_train_end the module holds the average and the trained weights are kept aside
        checkpoint["current_model_state"] = self._trained
        checkpoint["averaging_state"] = {k: v for k, v in self._average_model.state_dict().items()
                                         if not k.startswith("module.")}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """Restore both models in ``fit``; elsewhere the checkpoint's ``state_dict`` (the average) is what runs."""
        if self._average_model is None:
            return
        super().on_load_checkpoint(trainer, pl_module, checkpoint)


def _recalibrate(trainer: pl.Trainer, pl_module: pl.LightningModule, before_validation: bool = False) -> bool:
    """Have every PreciseBatchNorm callback re-estimate the module's statistics now; True when one did.

    ``before_validation``: only those that re-estimate before validations (their ``before_validation``).
    """
    done = False
    for cb in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(cb, PreciseBatchNorm) and (cb.before_validation or not before_validation):
            done = cb.recalibrate(trainer, pl_module, force=True) or done
    return done
