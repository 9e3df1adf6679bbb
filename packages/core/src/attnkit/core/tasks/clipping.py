"""Gradient-norm clipping that starts after a number of optimiser steps, and logs the norm it sees."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch.optim import Optimizer

__all__ = ["ClipGradients"]


# a packaged config (utransformer-monuseg) lists the callback itself; a command-line flag cannot take one entry out
_DROP = (". If ClipGradients comes from a packaged config, write it out with `attnkit fit -c <config> --print_config "
         "> mine.yaml`, delete its entry under trainer.callbacks and run with `-c mine.yaml`")


class ClipGradients(pl.Callback):
    """Clip the global gradient norm at ``max_norm`` from optimiser step ``start_step`` on; log the norm.

    The Trainer's ``gradient_clip_val`` clips from the first step. Early in training from random
    initialisation the norm is large at most steps (UTransformer on MoNuSeg: median 1.36 over the first 100
    steps), so a threshold meant for the rare late spikes also shrinks the first steps; this callback leaves
    the first ``start_step`` steps alone::

        trainer:
          callbacks:
            - class_path: attnkit.core.tasks.ClipGradients
              init_args: {max_norm: 3.0, start_step: 100}

    The norm is that of all gradients of the optimiser's parameters, taken after gradient accumulation and,
    with 16-bit mixed precision, after unscaling (Lightning's ``on_before_optimizer_step``); under DDP the
    gradients are already averaged, so every process clips alike. The norm before clipping is logged per
    step as ``train/grad_norm`` (``log_norm``), also before ``start_step``. The decision reads
    ``trainer.global_step``, which a resumed run restores.

    Args:
        max_norm: the largest norm let through (> 0).
        start_step: the first optimiser step (0-based) that is clipped.
        norm_type: the p of the p-norm (``inf``: the largest absolute value).
        log_norm: log ``train/grad_norm``.

    Raises:
        ValueError: ``max_norm <= 0``, ``start_step < 0``; at fit start, the Trainer's ``gradient_clip_val``
            also set, manual optimisation, or a sharded strategy (FSDP / model parallel: each process holds
            a shard of the gradients, so this process's norm is not the global one).
    """

    def __init__(self, max_norm: float, start_step: int = 0, norm_type: float = 2.0, log_norm: bool = True) -> None:
        if not max_norm > 0:
            raise ValueError(f"ClipGradients: max_norm must be > 0, got {max_norm}")
        if start_step < 0:
            raise ValueError(f"ClipGradients: start_step must be >= 0, got {start_step}")
        self.max_norm, self.start_step = float(max_norm), int(start_step)
        self.norm_type, self.log_norm = float(norm_type), bool(log_norm)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if trainer.gradient_clip_val:
            raise ValueError(
                f"ClipGradients and the Trainer's gradient_clip_val={trainer.gradient_clip_val} both clip: keep "
                "one (ClipGradients(start_step=0) clips from the first step, as gradient_clip_val does)" + _DROP)
        if not pl_module.automatic_optimization:
            raise ValueError("ClipGradients needs automatic optimisation; with manual optimisation clip in "
                             "training_step (self.clip_gradients)")
        strategy = type(trainer.strategy).__name__
        if "FSDP" in strategy or "ModelParallel" in strategy or "DeepSpeed" in strategy:
            raise ValueError(
                f"ClipGradients cannot clip under {strategy}: each process holds a shard of the gradients; use "
                "the Trainer's gradient_clip_val there" + _DROP)

    def on_before_optimizer_step(  # noqa: D102
            self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer) -> None:
        clip = trainer.global_step >= self.start_step
        if not (clip or self.log_norm):
            return
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return
        grads: list[Any] = [p.grad for p in params]
        norm = torch.nn.utils.get_total_norm(grads, self.norm_type)
        if clip and math.isfinite(self.max_norm):
            torch.nn.utils.clip_grads_with_norm_(params, self.max_norm, norm)
        if self.log_norm:
            pl_module.log("train/grad_norm", norm.detach(), on_step=True, on_epoch=False)
