"""Transformer encoder layers (pre- or post-norm) on :class:`MultiHeadAttention`."""

from __future__ import annotations

import copy
from typing import Literal

from torch import Tensor, nn

from attnkit.core.attention import Backend, Mask
from attnkit.core.layers.mha import MultiHeadAttention

__all__ = ["FeedForward", "TransformerEncoder", "TransformerEncoderLayer"]

Activation = Literal["gelu", "relu"]


def _activation(name: str) -> nn.Module:
    if name == "gelu":
        return nn.GELU()
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"unknown activation {name!r}; choose 'gelu' or 'relu'")


class FeedForward(nn.Module):
    """Position-wise feed-forward: ``Linear(D, F) -> act -> dropout -> Linear(F, D)``."""

    def __init__(self, embed_dim: int, ffn_dim: int, dropout: float = 0.0, activation: Activation = "gelu",
                 bias: bool = True) -> None:
        super().__init__()
        self.linear1 = nn.Linear(embed_dim, ffn_dim, bias=bias)
        self.activation = _activation(activation)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_dim, embed_dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, L, D) -> (B, L, D)``."""
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class TransformerEncoderLayer(nn.Module):
    """Self-attention + feed-forward with residuals, pre- or post-norm.

    Args:
        embed_dim: model width ``D``.
        num_heads: attention heads.
        ffn_dim: hidden width of the feed-forward (default ``4 * D``).
        dropout: dropout on the residual branches and inside the feed-forward.
        attn_dropout: dropout on attention weights (default ``dropout``).
        activation: ``"gelu"`` or ``"relu"``.
        norm_first: pre-norm (``x + f(norm(x))``) when true, post-norm (``norm(x + f(x))``) otherwise.
        bias: biases in projections.
        layer_norm_eps: LayerNorm epsilon.
        backend: attention backend.

    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        ffn_dim: int | None = None,
        *,
        dropout: float = 0.1,
        attn_dropout: float | None = None,
        activation: Activation = "gelu",
        norm_first: bool = True,
        bias: bool = True,
        layer_norm_eps: float = 1e-5,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(
            embed_dim, num_heads, dropout=dropout if attn_dropout is None else attn_dropout, bias=bias,
            backend=backend,
        )
        self.ffn = FeedForward(embed_dim, ffn_dim or 4 * embed_dim, dropout, activation, bias)
        self.norm1 = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, mask: Mask | Tensor | None = None, *, need_weights: bool = False,
                ) -> tuple[Tensor, Tensor | None]:
        """``(B, L, D) -> ((B, L, D), weights (B, H, L, L) or None)``."""
        if self.norm_first:
            a, w = self.self_attn(self.norm1(x), mask=mask, need_weights=need_weights)
            x = x + self.dropout1(a)
            x = x + self.dropout2(self.ffn(self.norm2(x)))
        else:
            a, w = self.self_attn(x, mask=mask, need_weights=need_weights)
            x = self.norm1(x + self.dropout1(a))
            x = self.norm2(x + self.dropout2(self.ffn(x)))
        return x, w


class TransformerEncoder(nn.Module):
    """A stack of :class:`TransformerEncoderLayer`, with a final LayerNorm for pre-norm stacks.

    Args:
        layer: the layer to clone ``num_layers`` times.
        num_layers: depth.
        final_norm: add a LayerNorm after the stack (default: when the layer is pre-norm).

    """

    def __init__(self, layer: TransformerEncoderLayer, num_layers: int,
                 final_norm: bool | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])
        use_norm = layer.norm_first if final_norm is None else final_norm
        d = layer.norm1.normalized_shape[0]
        self.norm: nn.Module = nn.LayerNorm(d, eps=layer.norm1.eps) if use_norm else nn.Identity()

    def forward(self, x: Tensor, mask: Mask | Tensor | None = None, *, need_weights: bool = False,
                ) -> tuple[Tensor, list[Tensor]]:
        """``(B, L, D) -> ((B, L, D), per-layer weights, empty unless need_weights)``."""
        weights: list[Tensor] = []
        for layer in self.layers:
            x, w = layer(x, mask, need_weights=need_weights)
            if w is not None:
                weights.append(w)
        return self.norm(x), weights
