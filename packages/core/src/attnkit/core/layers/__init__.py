"""Attention layers built on :func:`attnkit.core.attention.attention`."""

from attnkit.core.layers.convert import from_torch_encoder, from_torch_encoder_layer, from_torch_mha
from attnkit.core.layers.efficient import LinformerAttention, NystromAttention, nystrom_attention
from attnkit.core.layers.mha import MultiHeadAttention
from attnkit.core.layers.pooling import AttentionPooling
from attnkit.core.layers.positional import (
    LearnedPositionalEncoding,
    RelativePositionBias,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
)
from attnkit.core.layers.spatial import (
    ChannelAttention2d,
    CrossAttentionGate2d,
    PositionalEncoding2d,
    PositionAttention2d,
    SpatialSelfAttention2d,
    channel_attention,
)
from attnkit.core.layers.transformer import FeedForward, TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "AttentionPooling",
    "ChannelAttention2d",
    "CrossAttentionGate2d",
    "FeedForward",
    "LearnedPositionalEncoding",
    "LinformerAttention",
    "MultiHeadAttention",
    "NystromAttention",
    "PositionAttention2d",
    "PositionalEncoding2d",
    "RelativePositionBias",
    "RotaryEmbedding",
    "SinusoidalPositionalEncoding",
    "SpatialSelfAttention2d",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "channel_attention",
    "from_torch_encoder",
    "from_torch_encoder_layer",
    "from_torch_mha",
    "nystrom_attention",
]
