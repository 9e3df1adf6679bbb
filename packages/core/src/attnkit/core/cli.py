"""The ``attnkit`` command: LightningCLI over every installed attnkit domain package.

``attnkit fit|validate|test|predict -c CONFIG [overrides]`` runs a Lightning subcommand. ``CONFIG`` is a
path or the name of a config packaged inside an installed attnkit package (``attnkit configs`` lists
them). ``attnkit datasets`` lists the registered datasets. Domain packages make their tasks, data modules
and configs known through the ``attnkit.tasks`` entry-point group, so short class names
(``--model NextItemTask``) work for all of them.

Each run writes to ``runs/<config-name>/``: ``checkpoints/last.ckpt`` and ``checkpoints/best.ckpt``
(atomic writes), CSV and TensorBoard logs and the resolved config under ``logs/version_N/``.
``--ckpt_path last`` resumes (or evaluates) the run's last checkpoint, ``--ckpt_path best`` its best.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import pickle
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from attnkit.core.checkpoint import AtomicCheckpointIO, RunCheckpoint
from attnkit.core.io import load_checkpoint, load_yaml

__all__ = ["AttnkitCLI", "ConfigNotFoundError", "discover", "main", "packaged_configs", "resolve_config"]

ENTRY_POINT_GROUP = "attnkit.tasks"
SUBCOMMANDS = ("fit", "validate", "test", "predict")


class ConfigNotFoundError(FileNotFoundError):
    """``-c NAME`` is neither a file nor a packaged config."""


@dataclass(frozen=True)
class PackagedConfig:
    """A YAML config shipped inside an installed attnkit package."""

    name: str
    package: str
    path: Path

    def summary(self) -> str:
        """First comment line of the file, if any."""
        for line in self.path.read_text().splitlines():
            if line.startswith("#"):
                return line.lstrip("# ").strip()
            if line.strip():
                break
        return ""


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)


def discover() -> list[str]:
    """Import every installed attnkit domain package; returns the names of those that failed to import.

    Importing a package registers its Lightning classes (for short names) and its datasets.
    """
    failed = []
    for ep in _entry_points():
        try:
            ep.load()
        except Exception as e:  # a broken optional package must not break the others
            print(f"attnkit: could not import {ep.value} ({type(e).__name__}: {e})", file=sys.stderr)
            failed.append(ep.value)
    return failed


def _package_of(ep: importlib.metadata.EntryPoint) -> str:
    return ".".join(ep.value.split(":")[0].split(".")[:2])


def packaged_configs() -> dict[str, PackagedConfig]:
    """Configs shipped in ``attnkit/<package>/configs/*.yaml`` of every installed attnkit package."""
    found: dict[str, PackagedConfig] = {}
    for ep in _entry_points():
        pkg = _package_of(ep)
        try:
            folder = importlib.resources.files(pkg) / "configs"
        except ModuleNotFoundError:
            continue
        if not folder.is_dir():
            continue
        for item in sorted(folder.iterdir(), key=lambda p: p.name):
            if item.name.endswith((".yaml", ".yml")):
                name = item.name.rsplit(".", 1)[0]
                found.setdefault(name, PackagedConfig(name, pkg, Path(str(item))))
    return found


def resolve_config(value: str) -> Path:
    """A config path from a path or a packaged config name."""
    p = Path(value).expanduser()
    if p.is_file():
        return p
    configs = packaged_configs()
    name = p.name.rsplit(".", 1)[0] if p.suffix in (".yaml", ".yml") else value
    if name in configs and p.parent == Path("."):
        return configs[name].path
    known = ", ".join(sorted(configs)) or "none installed"
    raise ConfigNotFoundError(
        f"config {value!r} is neither a file nor a packaged config. Packaged configs: {known}. "
        "`attnkit configs` lists them with descriptions."
    )


def _split_config_args(argv: list[str]) -> tuple[list[str], list[Path]]:
    """Replace ``-c NAME`` by ``-c PATH`` and collect the config paths."""
    out, paths = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-c", "--config") and i + 1 < len(argv):
            path = resolve_config(argv[i + 1])
            out += [a, str(path)]
            paths.append(path)
            i += 2
            continue
        if a.startswith("--config="):
            path = resolve_config(a.split("=", 1)[1])
            out.append(f"--config={path}")
            paths.append(path)
        else:
            out.append(a)
        i += 1
    return out, paths


def _find_class(name: str, base: type) -> type | None:
    if "." in name:
        module, _, cls = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), cls, None)
        except ImportError:
            return None
        return found if isinstance(found, type) else None
    stack, seen = [base], set()
    while stack:
        c = stack.pop()
        for sub in c.__subclasses__():
            if sub in seen:
                continue
            seen.add(sub)
            if sub.__name__ == name:
                return sub
            stack.append(sub)
    return None


def _class_path(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        cp = value.get("class_path")
        return cp if isinstance(cp, str) else None
    return None


def _model_class(argv: list[str], configs: list[Path]) -> type | None:
    """The task class a run will use: ``--model X`` on the command line wins over the configs."""
    name = None
    for path in configs:
        data = load_yaml(path) or {}  # a YAML syntax error names <file>:<line>:<col>
        cp = _class_path(data.get("model")) if isinstance(data, dict) else None
        name = cp or name
    for i, a in enumerate(argv):
        if a == "--model" and i + 1 < len(argv):
            name = argv[i + 1]
        elif a.startswith("--model="):
            name = a.split("=", 1)[1]
    if name is None or name.lstrip().startswith(("{", "/", ".")) or name.endswith((".yaml", ".yml")):
        return None
    return _find_class(name, LightningModule)


class AttnkitCLI(LightningCLI):
    """LightningCLI with attnkit's run layout, checkpointing and data-to-model links.

    Args:
        links: ``{datamodule attribute: key below the task's init args}``, taken from the task's
            ``cli_links`` class attribute; linked on instantiation.
        run_name: folder name under ``runs/``.
        args: command-line arguments (default ``sys.argv[1:]``).
    """

    def __init__(self, links: dict[str, str] | None = None, run_name: str = "default",
                 args: list[str] | None = None) -> None:
        self._links = dict(links or {})
        super().__init__(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=42,
            trainer_defaults={"default_root_dir": str(Path("runs") / run_name)},
            save_config_kwargs={"overwrite": True},
            parser_kwargs={
                "description": "attnkit: train and evaluate attention models. Also: `attnkit configs` "
                "lists packaged configs, `attnkit datasets` lists registered datasets."
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
        task = _find_class(str(cfg.model.class_path), LightningModule)
        if cfg.checkpoint.monitor is None and task is not None and getattr(task, "monitor", None):
            cfg.checkpoint.monitor = task.monitor
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
        return super()._instantiate_trainer(config, callbacks)

    def _parse_ckpt_path(self) -> None:
        """Lightning reads ``--ckpt_path`` here first; an unreadable file fails naming the file."""
        try:
            super()._parse_ckpt_path()
        except (RuntimeError, OSError, EOFError, pickle.UnpicklingError):
            sub = self.config.get("subcommand")
            load_checkpoint(self.config[sub].get("ckpt_path"))  # raises CheckpointError naming the file
            raise

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
                hint = "" if ckpt == "last" else " (best.ckpt needs the task to log its monitored metric)"
                raise FileNotFoundError(
                    f"--ckpt_path {ckpt}: {path} does not exist{hint}. Run `attnkit fit` with the same config "
                    "first, or pass the path of a checkpoint file."
                )
        super()._run_subcommand(subcommand)


def _list_configs() -> int:
    discover()
    configs = packaged_configs()
    if not configs:
        print("no packaged configs found (is an attnkit domain package installed?)")
        return 0
    width = max(len(n) for n in configs)
    for name, c in sorted(configs.items()):
        print(f"{name:<{width}}  {c.package:<20} {c.summary()}")
    return 0


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def _list_datasets() -> int:
    from attnkit.core.data import data_root, registered

    discover()
    root = data_root()
    print(f"data root: {root} (set ATTNKIT_DATA_DIR to change)")
    for ds in registered():
        state = ds.state()
        print(f"{ds.id:<20} {state:<9} {_human(ds.size):>9}  {ds.description}")
        print(f"{'':<20} licence: {ds.licence}")
        if ds.citation:
            print(f"{'':<20} cite: {ds.citation}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``attnkit``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["configs"]:
        return _list_configs()
    if args[:1] == ["datasets"]:
        return _list_datasets()
    discover()
    try:
        args, paths = _split_config_args(args)
    except ConfigNotFoundError as e:
        print(f"attnkit: {e}", file=sys.stderr)
        return 2
    task = _model_class(args, paths)
    links = dict(getattr(task, "cli_links", {}) or {}) if task is not None else {}
    run_name = paths[0].stem if paths else (task.__name__ if task is not None else "default")
    AttnkitCLI(links=links, run_name=run_name, args=args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
