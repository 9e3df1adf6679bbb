"""Checkpointing defaults of the ``attnkit`` command: atomic writes, ``last.ckpt`` and ``best.ckpt``."""

from __future__ import annotations

import copy
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["AtomicCheckpointIO", "RunCheckpoint"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the same folder, fsyncs it, then renames it.

    A process killed at any moment leaves either the previous complete file or the new complete file,
    never a truncated one. Only local paths are supported (use Lightning's default IO for remote URLs).
    Loading a local file goes through :func:`attnkit.core.io.load_checkpoint`, so a missing or truncated
    ``--ckpt_path`` fails with a message naming the file.
    """

    def load_checkpoint(self, path: Any, map_location: Any | None = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        """Load ``path``; local files raise :class:`~attnkit.core.errors.CheckpointError` naming the file."""
        if "://" in str(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        from attnkit.core.io import load_checkpoint

        return load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Save ``checkpoint`` to ``path`` atomically."""
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        target = Path(path)
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` with the run layout of ``attnkit``: ``<run>/checkpoints/{last,best}.ckpt``.

    ``best.ckpt`` tracks the task's ``monitor`` metric (a class attribute of the task, filled in by the
    CLI when ``monitor`` is left empty); ``last.ckpt`` is rewritten at every save, also every
    ``every_n_train_steps`` steps when set, so a killed run resumes with ``--ckpt_path last``.

    Args:
        dirpath: folder of the checkpoints (default ``<default_root_dir>/checkpoints``).
        monitor: logged metric for ``best.ckpt`` (default: the task's ``monitor``).
        mode: ``"min"`` or ``"max"`` (default: the task's ``monitor_mode``).
        every_n_train_steps: also save every N optimizer steps (mid-epoch), 0 to disable.
        every_n_epochs: save every N epochs.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        monitor: str | None = None,
        mode: Literal["min", "max"] = "min",
        every_n_train_steps: int = 0,
        every_n_epochs: int = 1,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename="best",
            monitor=monitor,
            mode=mode,
            save_last=True,
            save_top_k=1 if monitor else 0,
            every_n_train_steps=every_n_train_steps or None,
            # Lightning allows one trigger: step-based saving replaces the per-epoch one.
            every_n_epochs=None if every_n_train_steps else every_n_epochs,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
        # (global step, fit-loop state) after the latest training batch: see on_save_checkpoint
        self._batch_end_loop: tuple[int, dict[str, Any]] | None = None

    @property
    def state_key(self) -> str:
        """Keyed by ``monitor`` and ``mode`` only, not by how often it saves.

        Lightning's key includes the save frequency, so a run resumed with another ``every_n_train_steps``
        (or tested with ``--ckpt_path`` without the fit's overrides) dropped this callback's state -- the
        best score and path that ``best.ckpt`` is judged against -- with a warning about missing callbacks.
        """
        return self._generate_state_key(monitor=self.monitor, mode=self.mode)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """Find this callback's state in checkpoints saved under Lightning's key (which names the save frequency)."""
        states = checkpoint.get("callbacks")
        if not isinstance(states, dict) or self.state_key in states:
            return
        prefix = self.state_key[:-1] + ","  # "RunCheckpoint{'monitor': ..., 'mode': ...," + the save frequency
        older = [k for k in states if isinstance(k, str) and k.startswith(prefix)]
        if len(older) == 1:
            states[self.state_key] = states[older[0]]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Remove temporary files a killed run may have left, then set up as usual."""
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero and self.dirpath is not None and Path(self.dirpath).is_dir():
            for stale in Path(self.dirpath).glob(".*.ckpt.*.tmp"):
                stale.unlink(missing_ok=True)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Save on step triggers; ``last.ckpt`` is written even before the monitored metric exists.

        Lightning defers a step-triggered save until validation has logged the monitored metric, which
        for a run without validation (or a long first epoch) means no mid-run ``last.ckpt`` at all.
        """
        # What a save at this point holds: a save when training ends (mid-epoch too) resumes from it.
        self._batch_end_loop = (trainer.global_step, copy.deepcopy(trainer.fit_loop.state_dict()))
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        n = self._every_n_train_steps
        if n < 1 or trainer.global_step % n != 0 or self.monitor is None:
            return
        if self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self.monitor not in candidates:
            self._save_last_checkpoint(trainer, candidates)

    def mark_last_stale(self) -> None:
        """Have ``last.ckpt`` written again when training ends, though it was saved at this step.

        For a callback that changes the model after the save (batch-norm statistics re-estimated).
        """
        self._last_global_step_saved = -1

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Make ``last.ckpt`` hold the final state even when saving is step-based."""
        super().on_train_end(trainer, pl_module)
        fast_dev_run = getattr(trainer, "fast_dev_run", False)  # set by Trainer.__init__; not declared to mypy
        if self.save_last and not fast_dev_run and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """Save the loop's state so that a resume continues exactly where this run stopped.

        A checkpoint written after the epoch's last batch (when training ends on an epoch boundary) kept
        that epoch's batch count; Lightning 2.6 resumed from it with one extra batch numbered as the old
        epoch's, then began the next epoch, so a resumed run saw other batches than an uninterrupted one.
        A checkpoint written when training ends inside an epoch (``max_steps``, or a callback's re-save then)
        has Lightning's loop marking that epoch as completed: the resumed run began the next epoch and never
        trained on the rest of this one. It gets the loop state of this step's last batch instead, what a
        save right after the batch holds.
        """
        recorded = self._batch_end_loop
        _mend_finished_epoch(checkpoint, trainer.num_training_batches,
                             recorded[1] if recorded is not None and recorded[0] == trainer.global_step else None)
        super().on_save_checkpoint(trainer, pl_module, checkpoint)


def _mend_finished_epoch(checkpoint: dict[str, Any], batches_per_epoch: float,
                         batch_end_loop: dict[str, Any] | None) -> None:
    """Fix a fit-loop state that marks its epoch completed (no-op for one that does not).

    If fewer than the epoch's batches ran (training stopped inside it), use ``batch_end_loop``, the state
    recorded after this step's batch, when there is one; otherwise zero the per-epoch batch counters.
    """
    loops = checkpoint.get("loops")
    fit = loops.get("fit_loop") if isinstance(loops, dict) else None
    try:
        epoch = fit["epoch_progress"]["current"]  # type: ignore[index]
        batches = fit["epoch_loop.batch_progress"]["current"]  # type: ignore[index]
    except (KeyError, TypeError):
        return
    if not (epoch.get("completed", 0) >= 1 and epoch.get("completed") == epoch.get("ready")):
        return
    unfinished = math.isfinite(batches_per_epoch) and batches.get("completed", 0) < batches_per_epoch
    if batch_end_loop is not None and unfinished:
        loops["fit_loop"] = copy.deepcopy(batch_end_loop)  # type: ignore[index]
        return
    for k in batches:
        batches[k] = 0
