"""The Lightning side of the ``attnkit`` command (imported only by the subcommands that run a Trainer)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, EarlyStopping
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from attnkit.core.checkpoint import AtomicCheckpointIO, RunCheckpoint
from attnkit.core.io import load_checkpoint
from attnkit.core.tasks.base import PredictionWriter

__all__ = ["AttnkitCLI", "LogIntervalFitsEpoch", "find_class"]

# attnkit fits the interval to short epochs itself (LogIntervalFitsEpoch), so Lightning's advice is moot.
warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller than the logging")
# `attnkit` hands LightningCLI the resolved arguments (config names -> paths) while sys.argv keeps what the user
# typed, because Lightning's DDP launcher restarts the command from sys.argv in the other processes.
warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")
# Lightning 2.6 with torch 2.11 warns about its own use of a deprecated torch pytree API on every run.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


class _NoAdverts(logging.Filter):
    """Drops Lightning's advertisement for its cloud logger from the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


for _handler in logging.getLogger("lightning.pytorch").handlers:
    _handler.addFilter(_NoAdverts())


def find_class(name: str, base: type) -> type | None:
    """A subclass of ``base`` by short name (``NextItemTask``) or a class by import path."""
    import importlib

    if "." in name:
        module, _, cls = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), cls, None)
        except ImportError:
            return None
        return found if isinstance(found, type) else None
    stack, seen = [base], set[type]()
    while stack:
        c = stack.pop()
        subclasses: list[type] = c.__subclasses__()
        for sub in subclasses:
            if sub in seen:
                continue
            seen.add(sub)
            if sub.__name__ == name:
                return sub
            stack.append(sub)
    return None


class LogIntervalFitsEpoch(Callback):
    """Log training metrics at least once per epoch: ``log_every_n_steps`` is cut to the epoch's batches."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        batches = trainer.num_training_batches
        if isinstance(batches, int) and 0 < batches < trainer.log_every_n_steps:  # type: ignore[attr-defined]
            trainer.log_every_n_steps = batches  # type: ignore[attr-defined]


class AttnkitCLI(LightningCLI):
    """LightningCLI with attnkit's run layout, checkpointing and data-to-model links.

    The optimiser and scheduler are the task's ``optimizer``/``scheduler`` arguments (LightningCLI's own
    top-level ``optimizer:``/``lr_scheduler:`` keys are switched off, so there is one way to set them).

    Args:
        links: ``{datamodule attribute: key below the task's init args}``, taken from the task's
            ``cli_links`` class attribute; linked on instantiation.
        run_dir: the run folder (``runs/<config name>`` by default).
        args: command-line arguments.
    """

    def __init__(self, links: dict[str, str] | None = None, run_dir: Path = Path("runs/default"),
                 args: list[str] | None = None) -> None:
        self._links = dict(links or {})
        super().__init__(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=42,
            trainer_defaults={"default_root_dir": str(run_dir)},
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_kwargs={
                "description": "attnkit: train and evaluate attention models. Also: `attnkit configs` "
                "lists packaged configs, `attnkit datasets` registered datasets, `attnkit models` the models.",
                "exit_on_error": False,
            },
            args=args,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the ``checkpoint`` group and the task's data links."""
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        for src, dst in self._links.items():
            parser.link_arguments(f"data.{src}", f"model.init_args.{dst}", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        """Fill the checkpoint folder and monitored metric from the run folder and the task."""
        cfg = self.config.get(str(self.subcommand), self.config)
        root = Path(cfg.trainer.default_root_dir or ".")
        if cfg.checkpoint.dirpath is None:
            cfg.checkpoint.dirpath = str(root / "checkpoints")
        task = find_class(str(cfg.model.class_path), LightningModule)
        monitor = getattr(task, "monitor", None) if task is not None else None
        if cfg.checkpoint.monitor is None and monitor:
            cfg.checkpoint.monitor = monitor
            cfg.checkpoint.mode = getattr(task, "monitor_mode", "min")

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        root = Path(config.get("default_root_dir") or ".")
        if config.get("logger") in (None, True):
            csv = CSVLogger(str(root), name="logs")
            config["logger"] = [csv, TensorBoardLogger(str(root), name="logs", version=csv.version)]
        plugins = config.get("plugins")
        plugins = [] if plugins is None else (list(plugins) if isinstance(plugins, list) else [plugins])
        if not any(hasattr(p, "save_checkpoint") for p in plugins):
            plugins.append(AtomicCheckpointIO())
        config["plugins"] = plugins
        callbacks = [*callbacks, LogIntervalFitsEpoch()]
        given = config.get("callbacks") or []
        if self.subcommand == "predict" and not any(isinstance(c, PredictionWriter) for c in [*callbacks, *given]):
            callbacks.append(PredictionWriter())
        return super()._instantiate_trainer(config, callbacks)

    def _parse_ckpt_path(self) -> None:
        """Check a ``--ckpt_path`` file before anything is built: an unreadable one fails naming the file.

        Lightning would also merge the checkpoint's hyper-parameters into the ``model`` config here. Not in
        attnkit: the config and the command line define the run and the checkpoint gives the weights, as for
        ``best``/``last``. (Lightning's merge puts the task's init arguments where a ``class_path``/``init_args``
        task is expected, so every file path failed with "Option 'num_classes' is not accepted", and where it
        worked it would override what the command line set, e.g. ``predict``'s ``output_dir``.)
        """
        sub = self.config.get("subcommand")
        ckpt = self.config[sub].get("ckpt_path") if sub else None
        if ckpt and "://" not in str(ckpt) and Path(ckpt).is_file():
            load_checkpoint(ckpt)  # raises CheckpointError naming the file

    def _run_subcommand(self, subcommand: str) -> None:
        ns = self.config_init[subcommand]
        ckpt = ns.get("ckpt_path")
        if ckpt in ("best", "last"):
            folder = Path(self.config[subcommand].checkpoint.dirpath)
            path = folder / f"{ckpt}.ckpt"
            if path.is_file():
                ns.ckpt_path = str(path)
            elif subcommand == "fit" and ckpt == "last":
                print(f"attnkit: no {path} yet; starting a new run", file=sys.stderr)
                ns.ckpt_path = None
            else:
                raise FileNotFoundError(
                    f"--ckpt_path {ckpt}: {path} does not exist. Run `attnkit fit` with the same config first, "
                    "or pass the path of a checkpoint file."
                )
        elif ckpt is not None and "://" not in str(ckpt) and not Path(ckpt).is_file():
            raise FileNotFoundError(f"--ckpt_path {ckpt}: the file does not exist. Pass a checkpoint file, or `best` / "
                                    "`last` for the run's own checkpoints.")
        super()._run_subcommand(subcommand)

    def after_fit(self) -> None:
        """Make sure the run has a ``best.ckpt``, then say why training stopped and where everything is."""
        trainer = self.trainer
        if not trainer.is_global_zero or trainer.fast_dev_run:  # type: ignore[attr-defined]
            return
        lines = []
        for cb in trainer.callbacks:  # type: ignore[attr-defined]
            if isinstance(cb, EarlyStopping) and cb.stopped_epoch > 0:
                why = cb.stopping_reason_message or f"{cb.monitor} stopped improving"
                lines.append(f"early stopping after epoch {cb.stopped_epoch} (step {trainer.global_step}): {why}")
        ckpt = trainer.checkpoint_callback
        dirpath = getattr(ckpt, "dirpath", None)  # ModelCheckpoint's; the Checkpoint base has none
        folder = Path(dirpath) if dirpath else None
        if folder is not None:
            best, last = folder / "best.ckpt", folder / "last.ckpt"
            if not best.is_file() and last.is_file():
                _atomic_copy(last, best)
                lines.append(f"no {ckpt.monitor or 'monitored metric'} was logged (no validation ran), "  # type: ignore[union-attr]
                             "so best.ckpt is a copy of the last checkpoint")
        where = f"run in {_rel(trainer.default_root_dir)}"
        if folder is not None:
            where += f": checkpoints in {_rel(folder)} (best.ckpt, last.ckpt)"
        log_dir = getattr(trainer.loggers[0], "log_dir", None) if trainer.loggers else None  # no collective
        if log_dir:
            where += f", logs in {_rel(log_dir)}"
        lines.append(where)
        for line in lines:
            print(f"attnkit: {line}", file=sys.stderr)


def _rel(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _atomic_copy(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
