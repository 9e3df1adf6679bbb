"""Attention layers built on :func:`attnkit.core.attention.attention`."""

from attnkit.core.layers.mha import MultiHeadAttention
from attnkit.core.layers.transformer import FeedForward, TransformerEncoder, TransformerEncoderLayer

__all__ = ["FeedForward", "MultiHeadAttention", "TransformerEncoder", "TransformerEncoderLayer"]
