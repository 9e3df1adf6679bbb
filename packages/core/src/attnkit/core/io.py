"""Reading the user's files with errors that name the file: checkpoints and YAML configs.

torch and yaml are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

from attnkit.core.errors import CheckpointError, CheckpointNotFoundError, ConfigError, DataNotFoundError

__all__ = ["load_checkpoint", "load_yaml"]


def _torch_detail(e: BaseException) -> str:
    """The informative part of a torch.load error, one line."""
    text = str(e).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error" in ln:
            tail = ln.split("WeightsUnpickler error", 1)[1].lstrip(": ").strip()
            if not tail and i + 1 < len(lines):
                tail = lines[i + 1]
            if tail:
                return tail.split(". ")[0].rstrip(".")
    if not lines:
        return f"{type(e).__name__} (the file ended early)"
    return lines[0].split(". ")[0].rstrip(".")


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu", *,
                    weights_only: bool | None = True) -> Any:
    """``torch.load(path, map_location, weights_only=True)`` with errors that name the file and the fix.

    Args:
        path: a checkpoint written by ``torch.save`` (``.ckpt``, ``.pt``, ``.tar``).
        map_location: device or mapping for the tensors (as in :func:`torch.load`).
        weights_only: passed to :func:`torch.load`; keep ``True`` for files from anywhere but yourself.

    Returns:
        Whatever the file holds (for Lightning checkpoints a dict with ``"state_dict"``).

    Raises:
        CheckpointNotFoundError: ``path`` does not exist or is a folder.
        CheckpointError: the file is truncated, is not a checkpoint, or holds objects ``weights_only=True``
            refuses; the message names the file.
    """
    import torch

    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointNotFoundError(
            f"checkpoint {p} does not exist; pass the path of a .ckpt file (a run writes "
            "runs/<config>/checkpoints/last.ckpt and best.ckpt)"
        )
    if p.is_dir():
        raise CheckpointNotFoundError(f"checkpoint {p} is a folder; pass a checkpoint file inside it")
    try:
        return torch.load(p, map_location=map_location, weights_only=weights_only)
    except PermissionError as e:
        raise CheckpointError(f"checkpoint {p} cannot be read ({e.strerror}); check its permissions") from None
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        detail = _torch_detail(e)
        if "Unsupported global" in str(e):
            raise CheckpointError(
                f"checkpoint {p} holds Python objects that torch.load(weights_only=True) refuses to unpickle "
                f"({detail}); use a checkpoint of tensors and plain containers, or register the class with "
                "torch.serialization.add_safe_globals if you trust the file"
            ) from None
        raise CheckpointError(
            f"checkpoint {p} is truncated or not a checkpoint file: torch.load(weights_only=True) failed with "
            f"{detail} ({p.stat().st_size} bytes). An interrupted copy or save leaves such files: copy it "
            "again or use an earlier checkpoint"
        ) from None


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Read a YAML file; syntax errors become ``<file>:<line>:<col>: <problem>``.

    Args:
        path: the YAML file.

    Returns:
        The parsed document (``None`` for an empty file).

    Raises:
        DataNotFoundError: ``path`` does not exist.
        ConfigError: the file is not valid YAML; the message names the file, line and column (1-based).
    """
    import yaml

    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataNotFoundError(f"config file {p} does not exist; check the path") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a UTF-8 text file ({e.reason} at byte {e.start}); save it as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(p)
        problem = e.problem or e.context or "invalid YAML"
        context = f" ({e.context})" if e.context and e.problem else ""
        raise ConfigError(f"{where}: {problem}{context}; fix the YAML syntax there") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML ({e}); fix the YAML syntax") from None
