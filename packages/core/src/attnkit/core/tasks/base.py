"""``Task``: the LightningModule base every attnkit task subclasses.

It owns what every task would otherwise repeat: the monitored metric and its mode, the links from data
module to model that the CLI applies, the optimiser and scheduler (configured one way: the task's
``optimizer`` and ``scheduler`` arguments), ``{stage}/loss`` logging, the model spec saved in checkpoints
(so :func:`attnkit.core.models.load_model` and ``Task.load_from_checkpoint(path)`` need no extra arguments),
and predictions written as files under ``<run>/predictions/`` by :class:`PredictionWriter`.

A domain task adds its loss, metrics and batch shape, and overrides :meth:`Task.write_predictions` when a
table of numbers is not the natural output of its domain.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics import MeanMetric

from attnkit.core.io import load_checkpoint
from attnkit.core.models import build_model, checkpoint_model_spec, model_spec
from attnkit.core.tasks.optim import build_optimization

__all__ = ["PredictionWriter", "Task", "write_table"]

_NOT_HPARAMS = ("model", "optimizer", "scheduler")


class Task(pl.LightningModule):
    """Base class of attnkit's Lightning tasks.

    Subclasses call ``super().__init__(model, optimizer, scheduler)`` first; their own constructor arguments
    are saved as hyper-parameters (the model, optimiser and scheduler are not: the model's architecture is
    saved as a spec, its weights in the state dict).

    Class attributes a subclass sets:
        monitor: the logged metric ``best.ckpt`` tracks (``"val/loss"`` by default).
        monitor_mode: ``"min"`` or ``"max"``.
        scheduler_monitor: the metric a ``ReduceLROnPlateau`` scheduler watches (default: ``monitor``).
        cli_links: ``{data module attribute: key under the task's init args}``, linked by the CLI.

    Args:
        model: the pure ``nn.Module``.
        optimizer: builds the optimiser from the parameters.
        scheduler: builds an optional learning-rate scheduler from the optimiser; a ``ReduceLROnPlateau``
            watches :attr:`monitor`.

    """

    monitor: ClassVar[str] = "val/loss"
    monitor_mode: ClassVar[Literal["min", "max"]] = "min"
    cli_links: ClassVar[dict[str, str]] = {}
    scheduler_monitor: ClassVar[str | None] = None
    _precision_warned: ClassVar[bool] = False  # the slow-bf16 warning is given once per process

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        if isinstance(model, Mapping):  # a spec saved by an earlier run (``load_from_checkpoint``)
            model = build_model(model)
        if not isinstance(model, nn.Module):
            raise TypeError(f"{type(self).__name__} needs an nn.Module as `model`, got {type(model).__name__}")
        self.save_hyperparameters(ignore=list(_NOT_HPARAMS))
        for key in ("_instantiator", "_class_path"):  # LightningCLI's: we rebuild the model ourselves
            self.hparams.pop(key, None)
        self.model = model
        self.optimizer, self.scheduler = optimizer, scheduler
        self._loss_means = nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})

    def setup(self, stage: str) -> None:
        """Warn once when the trainer's precision would run far slower than float32 on this CPU.

        A subclass that overrides ``setup`` calls ``super().setup(stage)``.
        """
        trainer = self._trainer
        if trainer is None or Task._precision_warned:
            return
        from lightning.pytorch.accelerators import CPUAccelerator

        from attnkit.core.runtime import slow_precision_warning

        message = slow_precision_warning(str(trainer.precision), isinstance(trainer.accelerator, CPUAccelerator))
        if message is not None:
            Task._precision_warned = True
            rank_zero_warn(message, category=UserWarning)

    # -- logging ------------------------------------------------------------------------------------
    def log_loss(self, stage: str, loss: Tensor, batch_size: int | None = None) -> None:
        """Log ``{stage}/loss``: per step in training, else the sample-weighted mean over the epoch.

        Evaluation losses go through a ``MeanMetric`` weighted by ``batch_size``, so the epoch value is exact
        under several processes (Lightning's ``sync_dist`` mean would weight processes, not samples).
        """
        if stage == "train":
            self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
            return
        if stage not in self._loss_means:
            raise ValueError(f"log_loss takes stage 'train', 'val' or 'test', got {stage!r}")
        mean = self._loss_means[stage]
        assert isinstance(mean, MeanMetric)
        mean.update(loss.detach(), weight=1 if batch_size is None else batch_size)
        self.log(f"{stage}/loss", mean, prog_bar=stage == "val", batch_size=batch_size, on_step=False, on_epoch=True)

    def forward_batch(self, batch: Any) -> Any:
        """Run the model on one training batch as ``training_step`` does, without the loss or logging.

        :class:`~attnkit.core.tasks.PreciseBatchNorm` calls it to re-estimate batch-norm statistics; tasks
        whose models have batch norm implement it.
        """
        raise NotImplementedError(f"{type(self).__name__}.forward_batch(batch) is not implemented: it runs the model "
                                  "on a training batch (for PreciseBatchNorm); override it in the task")

    # -- optimisation -------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        """The optimiser over all parameters, and the scheduler when one is configured.

        A scheduler shaped by the length of training (:class:`WarmupCosineLR` without ``total_steps``) is told
        the trainer's ``estimated_stepping_batches``.
        """
        return build_optimization(self.parameters(), self.optimizer, self.scheduler,
                                  self.scheduler_monitor or self.monitor,
                                  total_steps=lambda: self.trainer.estimated_stepping_batches)

    # -- checkpoints --------------------------------------------------------------------------------
    def checkpoint_metadata(self) -> dict[str, Any]:
        """Extra plain values saved under ``checkpoint["attnkit"]["meta"]`` (tag names, sample rates, ...)."""
        return {}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Save the model spec (for :func:`~attnkit.core.models.load_model`) and :meth:`checkpoint_metadata`."""
        cls = type(self)
        checkpoint["attnkit"] = {
            "version": 1,
            "task": f"{cls.__module__}.{cls.__qualname__}",
            "model": model_spec(self.model),
            "meta": self.checkpoint_metadata(),
        }

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path,
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Lightning's ``load_from_checkpoint``; the model is rebuilt from the checkpoint unless ``model=`` is given."""
        if "model" not in kwargs:
            ckpt = load_checkpoint(checkpoint_path)
            spec = checkpoint_model_spec(ckpt)
            if spec is None:
                raise ValueError(f"{checkpoint_path} stores no model spec; pass model=<the nn.Module> to rebuild it")
            kwargs["model"] = build_model(spec)
        return super().load_from_checkpoint(checkpoint_path, map_location, hparams_file, strict, **kwargs)

    # -- predictions --------------------------------------------------------------------------------
    @property
    def prediction_dir(self) -> Path:
        """Where predictions go: ``<run>/predictions/`` (the CLI's run folder, or the trainer's root dir)."""
        custom = getattr(self, "_prediction_dir", None)
        if custom is not None:
            return Path(custom)
        root = self.trainer.default_root_dir if self._trainer is not None else "."
        return Path(root) / "predictions"

    def on_predict_epoch_end(self) -> None:
        """Write the predictions when no :class:`PredictionWriter` does (``trainer.predict`` from Python)."""
        trainer = self.trainer
        if not any(isinstance(cb, PredictionWriter) for cb in trainer.callbacks):  # type: ignore[attr-defined]
            _write_epoch(trainer, self, trainer.predict_loop.predictions)

    def write_predictions(self, predictions: Sequence[Any], directory: Path, suffix: str = "") -> list[Path]:
        """Write the outputs of ``predict_step`` for a whole epoch; returns the files written.

        The default writes ``predictions{suffix}.csv`` with one row per sample: tensors ``(B,)`` or ``(B, K)``
        (or dicts of them, one column group per key). Tasks whose output is not a table override this.

        Args:
            predictions: what ``predict_step`` returned, one entry per batch.
            directory: the folder to write into (created).
            suffix: ``"-rank<r>"`` under multi-process prediction, else ``""``.

        """
        rows = [p if isinstance(p, Mapping) else {"prediction": p} for p in predictions if p is not None]
        if not rows:
            return []
        return [write_table(rows, directory / f"predictions{suffix}.csv")]


def write_table(batches: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Write batches of ``{name: (B,) or (B, K) tensor/array/list}`` as one CSV table.

    ``(B, K)`` values become columns ``name_0 .. name_{K-1}``; floats are written with full precision.
    """
    columns: dict[str, list[Any]] = {}
    for batch in batches:
        for key, value in batch.items():
            t = value.detach().cpu() if isinstance(value, Tensor) else torch.as_tensor(value) \
                if not isinstance(value, list | tuple) or not value or not isinstance(value[0], str) else value
            if isinstance(t, Tensor) and t.dim() == 2:
                for j in range(t.shape[1]):
                    columns.setdefault(f"{key}_{j}", []).extend(t[:, j].tolist())
            else:
                columns.setdefault(key, []).extend(t.tolist() if isinstance(t, Tensor) else list(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(columns)
    n = max(len(v) for v in columns.values())
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for i in range(n):
            w.writerow([_cell(columns[c][i]) if i < len(columns[c]) else "" for c in names])
    return path


def _cell(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value


class PredictionWriter(BasePredictionWriter):
    """Writes a :class:`Task`'s predictions under ``<run>/predictions/`` and says where.

    The ``attnkit predict`` command adds it. Under multi-process prediction each rank writes its own files
    (``-rank<r>`` before the extension).

    Args:
        directory: the output folder (default: the task's :attr:`Task.prediction_dir`).
    """

    def __init__(self, directory: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.directory = directory
        self.written: list[Path] = []

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Point the task at the output folder before its first ``predict_step``."""
        if self.directory is not None:
            pl_module._prediction_dir = Path(self.directory)  # type: ignore[assignment]

    def write_on_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           predictions: Sequence[Any], batch_indices: Sequence[Any]) -> None:
        """Hand the epoch's predictions to the task's writer."""
        if isinstance(pl_module, Task):
            self.written = _write_epoch(trainer, pl_module, predictions)


def _write_epoch(trainer: pl.Trainer, task: Task, predictions: Sequence[Any]) -> list[Path]:
    """Call ``task.write_predictions`` on an epoch's outputs (flattened over dataloaders) and say where."""
    multi = len(trainer.num_predict_batches) > 1  # then one list of batch outputs per dataloader
    preds = [p for loader in predictions for p in loader] if multi else list(predictions)
    suffix = f"-rank{trainer.global_rank}" if trainer.world_size > 1 else ""
    directory = task.prediction_dir
    directory.mkdir(parents=True, exist_ok=True)
    written = task.write_predictions(preds, directory, suffix)
    if trainer.is_global_zero:
        files = sorted(p for p in directory.rglob("*") if p.is_file())
        print(f"attnkit: predictions: {len(files)} file(s) in {directory}", file=sys.stderr)
    return written
