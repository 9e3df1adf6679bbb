"""Attention pooling: a learned query attends over time and summarises a sequence."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnkit.core.attention import Backend, KeyPaddingMask, Mask
from attnkit.core.layers.mha import MultiHeadAttention

__all__ = ["AttentionPooling"]


class AttentionPooling(nn.Module):
    """Pools ``(B, L, D)`` to ``(B, D)`` with learned queries attending over time, ignoring padding.

    ``pool(x) = MHA(query=q_learned, key/value=x)``; with ``num_queries > 1`` the output is
    ``(B, num_queries, D)`` (or flattened to ``(B, num_queries * D)`` with ``flatten=True``). A sequence
    with no valid step pools to zeros.

    Args:
        embed_dim: width ``D``.
        num_heads: attention heads.
        num_queries: number of learned queries.
        dropout: attention dropout.
        bias: projection biases.
        out_proj: project the pooled heads back to ``D`` (otherwise heads are concatenated values).
        flatten: return ``(B, num_queries * D)`` when ``num_queries > 1``.
        backend: attention backend.

    """

    def __init__(self, embed_dim: int, num_heads: int = 1, *, num_queries: int = 1, dropout: float = 0.0,
                 bias: bool = True, out_proj: bool = True, flatten: bool = False,
                 backend: Backend = "auto") -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, num_queries, embed_dim) * embed_dim**-0.5)
        self.attn = MultiHeadAttention(embed_dim, num_heads, dropout=dropout, bias=bias, cross_attention=True,
                                       out_proj=out_proj, backend=backend)
        self.num_queries, self.flatten = num_queries, flatten

    def forward(self, x: Tensor, mask: Mask | Tensor | None = None, *, need_weights: bool = False,
                ) -> tuple[Tensor, Tensor | None]:
        """Pool a sequence.

        Args:
            x: ``(B, L, D)``.
            mask: which steps are real: lengths ``(B,)``, a bool ``(B, L)`` with ``True`` = valid, or a
                :class:`KeyPaddingMask`.
            need_weights: also return the weights ``(B, H, num_queries, L)``.

        Returns:
            ``(pooled, weights or None)``: pooled is ``(B, D)`` for one query, else ``(B, Q, D)``
            (``(B, Q * D)`` with ``flatten``).

        """
        if isinstance(mask, Tensor) and (mask.dim() == 1 or (mask.dtype == torch.bool and mask.dim() == 2)):
            mask = KeyPaddingMask(mask)
        q = self.query.expand(x.shape[0], -1, -1).to(x.dtype)
        out, w = self.attn(q, x, mask, need_weights=need_weights)
        if self.num_queries == 1:
            return out[:, 0], w
        return (out.flatten(1) if self.flatten else out), w
