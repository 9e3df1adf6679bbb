"""attnkit.core: one attention() over fast kernels, composable masks, transformer blocks."""

from attnkit.core.attention import (
    BackendUnavailableError,
    BoolMask,
    CausalMask,
    DiagonalMask,
    DocumentMask,
    KeyPaddingMask,
    Mask,
    SlidingWindowMask,
    attention,
    record_backends,
)
from attnkit.core.layers import FeedForward, MultiHeadAttention, TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "BackendUnavailableError",
    "BoolMask",
    "CausalMask",
    "DiagonalMask",
    "DocumentMask",
    "FeedForward",
    "KeyPaddingMask",
    "Mask",
    "MultiHeadAttention",
    "SlidingWindowMask",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "attention",
    "record_backends",
]
