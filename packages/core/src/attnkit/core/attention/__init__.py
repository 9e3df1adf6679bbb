"""Attention kernels and masks."""

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
