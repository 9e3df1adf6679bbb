"""Lazy public names for package ``__init__`` modules (PEP 562).

A package lists ``{public name: "module.path:attribute"}``; the module is imported on first access of the
name, so ``from attnkit.recsys import SASRec`` imports the model's module and not the Lightning task next to
it. Type checkers read the real imports from an ``if TYPE_CHECKING:`` block in the same ``__init__``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose public names are imported on first use.

    Args:
        package: the package's ``__name__``.
        names: ``{public name: "module:attribute"}``.

    Returns:
        ``(__getattr__, __dir__)`` to assign at module level.

    """
    module = importlib.import_module(package)

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        mod, _, attr = target.partition(":")
        value = getattr(importlib.import_module(mod), attr or name)
        setattr(module, name, value)  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(module)) | set(names))

    return __getattr__, __dir__
