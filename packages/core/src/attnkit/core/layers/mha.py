"""Multi-head attention on top of :func:`attnkit.core.attention.attention`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from attnkit.core.attention import Backend, Mask, attention
from attnkit.core.layers.positional import RelativePositionBias, RotaryEmbedding

__all__ = ["MultiHeadAttention"]

ScoreHook = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


class MultiHeadAttention(nn.Module):
    """Multi-head attention with fused QKV for self-attention and separate projections for cross-attention.

    Args:
        embed_dim: model width ``D`` of queries and of the output.
        num_heads: number of heads ``H``.
        dropout: dropout on the attention weights (training only).
        bias: add biases to the projections.
        cross_attention: keys/values come from another sequence (separate Q and KV projections);
            otherwise one fused ``D -> 3 * H * head_dim`` projection is used.
        kdim: width of the key/value input for cross-attention (default ``embed_dim``).
        head_dim: size per head of queries and keys (default ``embed_dim // num_heads``).
        value_head_dim: size per head of values (default ``head_dim``).
        out_proj: project the concatenated heads back to ``embed_dim`` (default ``True``).
        scale: score scale (default ``1 / sqrt(head_dim)``).
        backend: attention backend, see :func:`~attnkit.core.attention.attention`.
        rotary: a :class:`RotaryEmbedding` applied to per-head queries and keys (RoPE).
        relative_bias: a :class:`RelativePositionBias` added to the scores (Shaw et al. clipped distances).

    Shapes:
        query ``(B, Lq, D)``, key/value ``(B, Lk, kdim)``, output ``(B, Lq, D)``; weights
        ``(B, H, Lq, Lk)`` when requested.

    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        cross_attention: bool = False,
        kdim: int | None = None,
        head_dim: int | None = None,
        value_head_dim: int | None = None,
        out_proj: bool = True,
        scale: float | None = None,
        backend: Backend = "auto",
        rotary: RotaryEmbedding | None = None,
        relative_bias: RelativePositionBias | None = None,
    ) -> None:
        super().__init__()
        if head_dim is None:
            if embed_dim % num_heads:
                raise ValueError(
                    f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}; pass head_dim "
                    "explicitly or choose a divisible number of heads"
                )
            head_dim = embed_dim // num_heads
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = head_dim
        self.value_head_dim = value_head_dim or head_dim
        self.dropout = dropout
        self.cross_attention = cross_attention
        self.scale = scale
        self.backend: Backend = backend
        qk, vv = num_heads * head_dim, num_heads * self.value_head_dim
        if cross_attention:
            self.q_proj: nn.Linear | None = nn.Linear(embed_dim, qk, bias=bias)
            self.kv_proj: nn.Linear | None = nn.Linear(kdim or embed_dim, qk + vv, bias=bias)
            self.qkv_proj: nn.Linear | None = None
        else:
            if kdim not in (None, embed_dim):
                raise ValueError("kdim only applies to cross-attention; pass cross_attention=True")
            self.qkv_proj = nn.Linear(embed_dim, 2 * qk + vv, bias=bias)
            self.q_proj = self.kv_proj = None
        self.out_proj: nn.Module = nn.Linear(vv, embed_dim, bias=bias) if out_proj else nn.Identity()
        if not out_proj and vv != embed_dim:
            raise ValueError("out_proj=False needs num_heads * value_head_dim == embed_dim")
        if rotary is not None and rotary.head_dim != head_dim:
            raise ValueError(
                f"rotary was built for head_dim={rotary.head_dim} but this layer has head_dim={head_dim}"
            )
        if relative_bias is not None and relative_bias.num_heads != num_heads:
            raise ValueError(
                f"relative_bias has {relative_bias.num_heads} heads but this layer has num_heads={num_heads}"
            )
        self.rotary = rotary
        self.relative_bias = relative_bias

    def _split(self, x: Tensor, d: int) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, d).transpose(1, 2)

    def project(self, query: Tensor, key: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Project inputs to per-head ``(B, H, L, head_dim)`` queries, keys and values."""
        qk, hd, vd = self.num_heads * self.head_dim, self.head_dim, self.value_head_dim
        if self.qkv_proj is not None:
            if key is not None and key is not query:
                raise ValueError(
                    "this MultiHeadAttention is self-attention (fused QKV); build it with "
                    "cross_attention=True to attend to a different key/value sequence"
                )
            q, k, v = self.qkv_proj(query).split([qk, qk, self.num_heads * vd], dim=-1)
        else:
            assert self.q_proj is not None and self.kv_proj is not None
            src = query if key is None else key
            q = self.q_proj(query)
            k, v = self.kv_proj(src).split([qk, self.num_heads * vd], dim=-1)
        return self._split(q, hd), self._split(k, hd), self._split(v, vd)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        mask: Mask | Tensor | None = None,
        *,
        need_weights: bool = False,
        rotary: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
        bias: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key`` (itself when ``None``).

        Args:
            query: ``(B, Lq, D)``.
            key: ``(B, Lk, kdim)`` for cross-attention; keys and values share this input.
            mask: a Mask or bool tensor, ``True`` = attend.
            need_weights: also return per-head weights ``(B, H, Lq, Lk)`` (runs the math backend).
            rotary: optional function applied to per-head ``(q, k)`` before attention, instead of the
                layer's own ``rotary`` module.
            bias: additive float score bias broadcastable to ``(B, H, Lq, Lk)``, added to the layer's
                ``relative_bias`` if it has one.

        Returns:
            ``(output (B, Lq, D), weights or None)``.

        """
        q, k, v = self.project(query, key)
        rot = rotary if rotary is not None else self.rotary
        if rot is not None:
            q, k = rot(q, k)
        if self.relative_bias is not None:
            rb = self.relative_bias(q.shape[-2], k.shape[-2]).to(q.dtype)
            bias = rb if bias is None else bias + rb
        p = self.dropout if self.training else 0.0
        if need_weights:
            out, w = attention(q, k, v, mask, dropout=p, scale=self.scale, backend="math",
                               return_weights=True, bias=bias)
        else:
            out = attention(q, k, v, mask, dropout=p, scale=self.scale, backend=self.backend, bias=bias)
            w = None
        assert isinstance(out, Tensor)
        b, _, lq, _ = out.shape
        out = out.transpose(1, 2).reshape(b, lq, self.num_heads * self.value_head_dim)
        return self.out_proj(out), w

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Xavier-uniform projections and zero biases (PyTorch's MultiheadAttention init)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
