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

import argparse
import importlib
import importlib.metadata
import importlib.resources
import os
import re
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ConfigNotFoundError", "discover", "main", "packaged_configs", "resolve_config"]

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


def discover(full: bool = False) -> list[str]:
    """Import every installed attnkit domain package; returns the names of those that failed to import.

    Importing a package registers its datasets and models (cheaply: public names are imported lazily).
    ``full=True`` also imports every public name, which registers the Lightning tasks and data modules
    under their short names (``--model NextItemTask``) and costs the import of Lightning.
    """
    failed = []
    for ep in _entry_points():
        try:
            pkg = ep.load()
            if full:
                for name in getattr(pkg, "__all__", ()):
                    getattr(pkg, name)
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


_YAML_NULLS = frozenset({"null", "Null", "NULL", "~"})


def _nested_nulls(argv: list[str]) -> list[str]:
    """Rewrite ``--a.init_args.b.init_args.key null`` as ``--a.init_args.b={init_args: {key: null}}``.

    jsonargparse (4.x) re-serialises an option of a class nested in another class as ``--key={value}``,
    so a YAML ``null`` two class levels down arrives as the string ``"None"`` and fails an
    ``int | None`` parameter ("expected NoneType or int"). The equivalent dict form merges with the
    config like the dotted option and keeps the ``None``. One class level down is not affected and is
    left as typed, as is every option whose value is not a YAML null.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        key, value, used = None, None, 1
        if a.startswith("--") and "=" in a:
            key, value = a[2:].split("=", 1)
        elif a.startswith("--") and i + 1 < len(argv):
            key, value, used = a[2:], argv[i + 1], 2
        parts = key.split(".") if key is not None else []
        if value in _YAML_NULLS and len([p for p in parts if p != "init_args"]) >= 3:
            parent = parts[:-1]
            if parent[-1] == "init_args":
                parent = parent[:-1]
            out.append(f"--{'.'.join(parent)}={{init_args: {{{parts[-1]}: null}}}}")
            i += used
            continue
        out.append(a)
        i += 1
    return out


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
    from attnkit.core._lightning_cli import find_class
    from attnkit.core.io import load_yaml

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
    from lightning.pytorch import LightningModule

    return find_class(name, LightningModule)


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


def _list_models() -> int:
    from attnkit.core.models import registered_models

    discover()
    models = registered_models()
    if not models:
        print("no models registered (is an attnkit domain package installed?)")
        return 0
    width = max(len(m.name) for m in models)
    print(f"{'name':<{width}}  {'domain':<10} {'default config':<22} paper")
    for m in models:
        print(f"{m.name:<{width}}  {m.domain:<10} {m.config or '-':<22} {m.paper}")
        print(f"{'':<{width}}  {'':<10} {'':<22} {m.class_path}" + (f"  ({m.notes})" if m.notes else ""))
    return 0


HELP = """usage: attnkit {fit,validate,test,predict} -c CONFIG [--run_dir DIR] [--threads N] [--debug] [overrides]
       attnkit {configs,datasets,models}

Train and evaluate attention models with one command.

subcommands:
  fit        train (and validate) a model            attnkit fit -c demo
  validate   evaluate a checkpoint on the validation split
  test       evaluate a checkpoint on the test split attnkit test -c demo --ckpt_path best
  predict    write a checkpoint's predictions to <run>/predictions/
  configs    list the packaged configs (CONFIG may be one of them or a YAML file)
  datasets   list the registered datasets and whether they are present
  models     list the registered models: paper, domain, default config

options:
  --run_dir DIR  root of the run folders (default: $ATTNKIT_RUNS_DIR or ./runs); a run writes to
                 DIR/<config name>/: checkpoints/{best,last}.ckpt, logs/, predictions/
  --threads N    CPU threads for torch (default: $ATTNKIT_NUM_THREADS, a user-set OMP_NUM_THREADS, else
                 1 on machines with 2 CPUs or fewer, where more threads slow training down)
  --debug        show the full traceback of an error (or set ATTNKIT_DEBUG=1)

On Linux the command keeps the memory that freed tensors held for the next step instead of handing it back to
the OS (faster CPU training; the process keeps its peak memory); ATTNKIT_MALLOC=system turns that off.

`attnkit fit --help` lists every option of a run; any of them can be overridden on the command line
(`attnkit fit -c demo --trainer.max_epochs 20`).
"""

def _pop_option(args: list[str], name: str) -> str | None:
    """Remove ``name VALUE`` or ``name=VALUE`` from ``args``; returns VALUE."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            value = args[i + 1]
            del args[i : i + 2]
            return value
        if a.startswith(name + "="):
            del args[i]
            return a.split("=", 1)[1]
    return None


def _run(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help", "help"):
        print(HELP, end="")
        return 0 if args else 2
    if args[0] == "configs":
        return _list_configs()
    if args[0] == "datasets":
        return _list_datasets()
    if args[0] == "models":
        return _list_models()
    if args[0] not in SUBCOMMANDS and not args[0].startswith("-"):
        known = ", ".join((*SUBCOMMANDS, "configs", "datasets", "models"))
        raise UsageError(f"unknown subcommand {args[0]!r}; choose one of {known}")
    runs_root = _pop_option(args, "--run_dir") or os.environ.get("ATTNKIT_RUNS_DIR") or "runs"
    threads = _pop_option(args, "--threads")
    from attnkit.core.runtime import configure_allocator, configure_threads

    configure_allocator()  # freed tensors' memory reused, not returned to the OS and faulted in again each step
    configure_threads(threads)
    discover(full=True)
    args, paths = _split_config_args(_nested_nulls(args))
    task = _model_class(args, paths)
    links = dict(getattr(task, "cli_links", {}) or {}) if task is not None else {}
    run_name = paths[0].stem if paths else (task.__name__ if task is not None else "default")
    from attnkit.core._lightning_cli import AttnkitCLI

    # sys.argv stays as the user typed it: DDP's launcher starts the other processes with it.
    AttnkitCLI(links=links, run_dir=Path(runs_root) / run_name, args=args)
    return 0


class UsageError(ValueError):
    """The command line itself is wrong (unknown subcommand, bad option value)."""


def _user_error(e: BaseException) -> str | None:
    """One line for an error the user can fix, or ``None`` for a bug (which keeps its traceback)."""
    known: tuple[type[BaseException], ...] = (ConfigNotFoundError, UsageError)
    try:
        from attnkit.core.errors import UserError

        known = (*known, UserError)
    except ImportError:  # pragma: no cover - errors.py ships with core
        pass
    msg = " ".join(str(e).split()) or type(e).__name__
    frames = traceback.extract_tb(e.__traceback__)
    if e.__cause__ is not None and frames and f"{os.sep}jsonargparse{os.sep}" in frames[-1].filename:
        # jsonargparse wraps what a class's __init__ raised while instantiating it: report that error
        inner = _user_error(e.__cause__)
        if inner is not None:
            return inner
    if isinstance(e, known):
        return msg
    if isinstance(e, argparse.ArgumentError):  # jsonargparse: a bad option or value
        return _argument_error(str(e))
    if type(e).__module__.startswith("yaml"):
        return f"invalid YAML: {msg}"
    if isinstance(e, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return msg
    if isinstance(e, ValueError | TypeError | KeyError | RuntimeError | ImportError):
        # Raised deliberately by attnkit (its messages say what to do), not from deep inside a library.
        if frames and f"{os.sep}attnkit{os.sep}" in frames[-1].filename:
            return msg
    return None


def _argument_error(text: str) -> str:
    """Jsonargparse's multi-line validation report as one line."""
    key = re.search(r'Parser key "([^"]+)"', text)
    given = re.search(r"Given value: (.*)", text)
    expected = sorted(set(re.findall(r"Expected a <class '([^']+)'>", text)))
    if key and given:
        want = f" (expected {' or '.join(expected)})" if expected else ""
        return f"invalid value {given.group(1).strip()!r} for --{key.group(1)}{want}"
    first = text.strip().splitlines()[0] if text.strip() else "invalid arguments"
    return f"{first} (`attnkit fit --help` lists the options)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``attnkit``: user errors print one line (``--debug`` for the traceback) and exit 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("ATTNKIT_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("attnkit: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if isinstance(e, BrokenPipeError) and _stdout_reader_gone():
            # `attnkit configs | head`: the reader of the output left. Stop quietly with the status of a
            # Unix tool killed by SIGPIPE (Python ignores the signal, so the write raised instead).
            _silence_stdout()
            return 141
        line = None if debug else _user_error(e)
        if line is None:
            raise
        print(f"attnkit: error: {line}", file=sys.stderr)
        print("attnkit: (--debug shows the traceback)", file=sys.stderr)
        return 2 if isinstance(e, ConfigNotFoundError | UsageError | argparse.ArgumentError) else 1
    finally:
        _close_process_group()


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe or socket whose reading end is closed (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or stdout without a file descriptor
        return False


def _silence_stdout() -> None:
    """Point stdout's descriptor at /dev/null, so that flushing it at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


def _close_process_group() -> None:
    """Destroy a DDP run's process group before the interpreter exits.

    A gloo group left open can abort the process at exit ("terminate called without an active exception").
    Imports nothing: torch is only looked up if a command already loaded it.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def __getattr__(name: str) -> Any:
    if name == "AttnkitCLI":  # the Lightning side, imported on first use
        from attnkit.core._lightning_cli import AttnkitCLI

        return AttnkitCLI
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    raise SystemExit(main())
