"""Attention kernels and masks."""

import sys
import types
from typing import Any

from attnkit.core.attention.functional import (
    Backend,
    BackendUnavailableError,
    attention,
    choose_backend,
    record_backends,
)
from attnkit.core.attention.masks import (
    AndMask,
    BoolMask,
    CausalMask,
    DiagonalMask,
    DocumentMask,
    KeyPaddingMask,
    Mask,
    OrMask,
    SlidingWindowMask,
    as_mask,
)

__all__ = [
    "AndMask",
    "Backend",
    "BackendUnavailableError",
    "BoolMask",
    "CausalMask",
    "DiagonalMask",
    "DocumentMask",
    "KeyPaddingMask",
    "Mask",
    "OrMask",
    "SlidingWindowMask",
    "as_mask",
    "attention",
    "choose_backend",
    "record_backends",
]


class _CallableModule(types.ModuleType):
    """``attnkit.core.attention`` is both this package and the function: calling the package calls the function.

    ``attnkit.core`` imports its public names lazily, so the import system may bind the name ``attention`` in
    ``attnkit.core`` to this package (when a submodule is imported) rather than to the function; either way
    ``from attnkit.core import attention; attention(q, k, v)`` works.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return attention(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
