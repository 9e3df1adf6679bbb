"""Positional encodings: sinusoidal, learned, relative (Shaw et al. 2018) and rotary (RoFormer)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "LearnedPositionalEncoding",
    "RelativePositionBias",
    "RotaryEmbedding",
    "SinusoidalPositionalEncoding",
    "sinusoidal_table",
]


def sinusoidal_table(length: int, dim: int, *, base: float = 10000.0,
                     device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Return the Transformer's fixed table ``(length, dim)``: ``sin`` in even, ``cos`` in odd columns.

    ``PE[p, 2i] = sin(p / base^(2i/dim))``, ``PE[p, 2i+1] = cos(p / base^(2i/dim))`` (Vaswani et al. 2017);
    an odd ``dim`` drops the last cosine column.
    """
    pos = torch.arange(length, device=device, dtype=torch.float64).unsqueeze(1)
    inv = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float64) * (-math.log(base) / dim))
    table = torch.zeros(length, dim, device=device, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * inv)
    table[:, 1::2] = torch.cos(pos * inv)[:, : dim // 2]
    return table.to(dtype)


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal encoding to ``(B, L, D)`` inputs.

    Args:
        embed_dim: width ``D``.
        max_len: longest sequence (the table is precomputed; longer inputs raise).
        dropout: dropout after adding (as in the original Transformer).
        base: wavelength base (10000 in the paper).
        scale_input: multiply the input by ``sqrt(D)`` first (the Transformer does this for embeddings).

    """

    table: Tensor  # (max_len, D) buffer

    def __init__(self, embed_dim: int, max_len: int = 5000, *, dropout: float = 0.0, base: float = 10000.0,
                 scale_input: bool = False) -> None:
        super().__init__()
        self.embed_dim, self.max_len = embed_dim, max_len
        self.scale = math.sqrt(embed_dim) if scale_input else 1.0
        self.register_buffer("table", sinusoidal_table(max_len, embed_dim, base=base), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """``(B, L, D) -> (B, L, D)``; positions start at ``offset``."""
        n = x.shape[-2]
        if offset + n > self.max_len:
            raise ValueError(f"sequence of length {n} at offset {offset} exceeds max_len={self.max_len}; "
                             "build the encoding with a larger max_len")
        return self.dropout(x * self.scale + self.table[offset:offset + n].to(x.dtype))


class LearnedPositionalEncoding(nn.Module):
    """Adds a learned embedding per position to ``(B, L, D)`` inputs (BERT / SASRec style).

    Args:
        max_len: number of positions.
        embed_dim: width ``D``.
        dropout: dropout after adding.

    """

    def __init__(self, max_len: int, embed_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, embed_dim)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """``(B, L, D) -> (B, L, D)``; positions start at ``offset``."""
        n = x.shape[-2]
        if offset + n > self.max_len:
            raise ValueError(f"sequence of length {n} at offset {offset} exceeds max_len={self.max_len} "
                             "learned positions; build it with a larger max_len")
        pos = torch.arange(offset, offset + n, device=x.device)
        return self.dropout(x + self.embedding(pos))


class RelativePositionBias(nn.Module):
    """Learned per-head bias on clipped relative distances (Shaw et al. 2018), as a bias or a score_mod.

    Query ``i`` and key ``j`` get ``table[clip(j - i, -K, K), h]`` added to their score, ``K =
    max_distance``: Shaw et al.'s clipping, with one scalar per head and distance (the key-side relative
    term ``q_i . a_ij`` collapsed to a learned scalar, as T5 later did). Positions are top-left aligned.

    Use it with any backend:

    * ``attention(q, k, v, bias=rpb(Lq, Lk))`` -- dense ``(1, H, Lq, Lk)`` bias (math adds it, sdpa takes
      it as a float ``attn_mask``, flex reads it in a score_mod);
      or ``MultiHeadAttention(..., relative_bias=rpb)``.
    * ``flex_attention(q, k, v, score_mod=rpb.score_mod())`` -- reads the ``(2K+1, H)`` table directly,
      never building the ``Lq x Lk`` bias.

    Args:
        num_heads: heads ``H``.
        max_distance: clipping distance ``K`` (Shaw et al. found ``K >= 2`` enough for translation).
        bidirectional: separate entries for keys before and after the query (otherwise ``|j - i|``).

    """

    def __init__(self, num_heads: int, max_distance: int = 16, *, bidirectional: bool = True) -> None:
        super().__init__()
        if max_distance < 1:
            raise ValueError(f"max_distance must be >= 1, got {max_distance}")
        self.num_heads, self.max_distance, self.bidirectional = num_heads, max_distance, bidirectional
        n = 2 * max_distance + 1 if bidirectional else max_distance + 1
        self.table = nn.Parameter(torch.zeros(n, num_heads))
        nn.init.normal_(self.table, std=0.02)

    def bucket(self, rel: Tensor) -> Tensor:
        """Table row for relative distances ``j - i``."""
        k = self.max_distance
        return rel.clamp(-k, k) + k if self.bidirectional else rel.abs().clamp(max=k)

    def forward(self, lq: int, lk: int | None = None) -> Tensor:
        """Return the bias ``(1, H, Lq, Lk)`` (``Lk`` defaults to ``Lq``)."""
        lk = lq if lk is None else lk
        dev = self.table.device
        rel = torch.arange(lk, device=dev).view(1, lk) - torch.arange(lq, device=dev).view(lq, 1)
        return self.table[self.bucket(rel)].permute(2, 0, 1).unsqueeze(0)

    def score_mod(self) -> Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]:
        """Return a FlexAttention ``score_mod(score, b, h, q_idx, kv_idx)`` adding the bias from the table."""
        table = self.table

        def relative_bias(score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return score + table[self.bucket(kv_idx - q_idx), h]

        return relative_bias


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoFormer, Su et al. 2021) for per-head ``(B, H, L, Dh)`` queries and keys.

    Channel pairs ``(x[i], x[i + Dh/2])`` of position ``p`` are rotated by the angle ``p * base^(-2i/Dh)``
    (the "rotate half" layout of GPT-NeoX / LLaMA), so ``q_i . k_j`` depends on ``i - j`` only. Pass it to
    :class:`~attnkit.core.layers.MultiHeadAttention` as ``rotary=RotaryEmbedding(head_dim)``.

    Args:
        head_dim: per-head size ``Dh`` (even).
        base: frequency base (10000 in the paper).
        rotary_dim: rotate only the first ``rotary_dim`` channels (default all).

    """

    inv_freq: Tensor  # (rotary_dim / 2,) float64 buffer

    def __init__(self, head_dim: int, *, base: float = 10000.0, rotary_dim: int | None = None) -> None:
        super().__init__()
        rd = head_dim if rotary_dim is None else rotary_dim
        if rd % 2 or rd > head_dim or rd < 2:
            raise ValueError(f"rotary_dim must be even and in [2, head_dim={head_dim}], got {rd}")
        self.head_dim, self.rotary_dim, self.base = head_dim, rd, base
        inv = 1.0 / (base ** (torch.arange(0, rd, 2, dtype=torch.float64) / rd))
        self.register_buffer("inv_freq", inv, persistent=False)

    def _cos_sin(self, n: int, offset: int, x: Tensor) -> tuple[Tensor, Tensor]:
        pos = torch.arange(offset, offset + n, device=x.device, dtype=torch.float64)
        ang = torch.outer(pos, self.inv_freq.to(x.device))
        ang = torch.cat([ang, ang], dim=-1)
        return ang.cos().to(x.dtype), ang.sin().to(x.dtype)

    def rotate(self, x: Tensor, offset: int = 0) -> Tensor:
        """Rotate ``(..., L, Dh)`` by positions ``offset .. offset + L - 1``."""
        if x.shape[-1] != self.head_dim:
            raise ValueError(f"RotaryEmbedding was built for head_dim={self.head_dim}, got {x.shape[-1]}")
        rd = self.rotary_dim
        cos, sin = self._cos_sin(x.shape[-2], offset, x)
        xr, rest = x[..., :rd], x[..., rd:]
        a, b = xr.chunk(2, dim=-1)
        out = xr * cos + torch.cat([-b, a], dim=-1) * sin
        return torch.cat([out, rest], dim=-1) if rest.shape[-1] else out

    def forward(self, q: Tensor, k: Tensor, offset: int = 0) -> tuple[Tensor, Tensor]:
        """Rotate queries ``(B, H, Lq, Dh)`` and keys ``(B, H, Lk, Dh)`` by their positions."""
        return self.rotate(q, offset), self.rotate(k, offset)
