"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import torch
from torch import Tensor, nn

from attnkit.core import BoolMask, CausalMask, KeyPaddingMask, MultiHeadAttention
from attnkit.core.attention import Backend
from attnkit.core.models import configurable

__all__ = ["SASRec", "SASRecBlock", "SASRecScorer", "sasrec_ml1m", "sasrec_paper"]

History = Sequence[int] | Sequence[Sequence[int]] | Tensor


class _Dropout(nn.Dropout):
    """Inverted dropout drawing a uniform mask (same distribution as nn.Dropout, ~2x faster on CPU)."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * (torch.rand_like(x) >= self.p).to(x.dtype) * (1.0 / (1.0 - self.p))


class SASRecBlock(nn.Module):
    """One SASRec block: causal self-attention and a point-wise feed-forward net.

    As in the authors' code, the attention's queries are layer-normalised but its keys/values are not,
    and each residual adds the normalised input: ``q = LN(x); x = q + Attn(q, x); y = LN(x); x = y + FFN(y)``.

    Args:
        embed_dim: width ``D``.
        num_heads: attention heads.
        dropout: dropout on attention weights and inside the feed-forward net.
        attn_out_proj: add an output projection after attention (the paper has none; PyTorch ports do).
        layer_norm_eps: layer-norm epsilon (1e-8 in the authors' code).
        backend: attention backend of :func:`attnkit.core.attention`.

    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float, *, attn_out_proj: bool = False,
                 layer_norm_eps: float = 1e-8, backend: Backend = "auto") -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.attn = MultiHeadAttention(embed_dim, num_heads, dropout=dropout, cross_attention=True,
                                       out_proj=attn_out_proj, backend=backend)
        self.ffn_norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.ffn = nn.Sequential(
            nn.Linear(embed_dim, embed_dim), nn.ReLU(), _Dropout(dropout),
            nn.Linear(embed_dim, embed_dim), _Dropout(dropout),
        )

    def forward(self, x: Tensor, mask: object, keep: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: ``(B, L, D)``.
            mask: an attnkit attention mask.
            keep: ``(B, L, 1)``, 1 at real items and 0 at padding.

        Returns:
            ``(B, L, D)``.

        """
        q = self.attn_norm(x)
        a, _ = self.attn(q, x, mask)  # type: ignore[arg-type]
        x = q + a
        y = self.ffn_norm(x)
        return (y + self.ffn(y)) * keep


@configurable
class SASRec(nn.Module):
    """SASRec: item ids ``(B, L)`` -> hidden states ``(B, L, D)``, scored against the item embeddings.

    Input sequences are left-padded with ``0`` (the most recent item last). Item embeddings are scaled by
    ``sqrt(D)`` and summed with learned position embeddings; causal blocks from :mod:`attnkit.core`
    follow, then a final layer norm. The same item embedding table scores the candidates.

    Args:
        num_items: catalogue size ``N``; ids are ``1..N`` and ``0`` is padding.
        embed_dim: width ``D`` (50 in the paper).
        num_heads: attention heads (1).
        num_layers: number of blocks (2).
        max_len: longest input ``L`` (50; 200 for ML-1M).
        dropout: dropout rate (0.5; 0.2 for ML-1M).
        attn_out_proj: output projection after attention (not in the paper).
        backend: attention backend.

    """

    def __init__(self, num_items: int, embed_dim: int = 50, num_heads: int = 1, num_layers: int = 2,
                 max_len: int = 50, dropout: float = 0.5, attn_out_proj: bool = False,
                 backend: Backend = "auto") -> None:
        super().__init__()
        if num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {num_items}")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.num_items, self.embed_dim, self.max_len = num_items, embed_dim, max_len
        self.item_emb = nn.Embedding(num_items + 1, embed_dim, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, embed_dim)
        self.emb_dropout = _Dropout(dropout)
        self.blocks = nn.ModuleList(
            SASRecBlock(embed_dim, num_heads, dropout, attn_out_proj=attn_out_proj, backend=backend)
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(embed_dim, eps=1e-8)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Glorot-uniform embeddings and weights, zero biases (TensorFlow defaults of the authors' code)."""
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.xavier_uniform_(p)
            elif "norm" not in name:
                nn.init.zeros_(p)
        self.item_emb.weight[0].zero_()

    def forward(self, seq: Tensor) -> Tensor:
        """Encode left-padded item sequences.

        Args:
            seq: ``(B, L)`` item ids, ``L <= max_len``, ``0`` = padding.

        Returns:
            ``(B, L, D)`` hidden states; position ``t`` predicts the item after ``seq[:, t]``.

        """
        if seq.dim() != 2:
            raise ValueError(f"seq must be (B, L) item ids, got shape {tuple(seq.shape)}")
        length = seq.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len={self.max_len}; keep the most recent "
                             f"{self.max_len} items (seq[:, -{self.max_len}:])")
        valid = seq != 0
        keep = valid.unsqueeze(-1).to(self.item_emb.weight.dtype)
        x = self.item_emb(seq) * math.sqrt(self.embed_dim)
        x = x + self.pos_emb.weight[self.max_len - length:].unsqueeze(0)
        x = self.emb_dropout(x) * keep
        # Causal attention to real (non-padding) keys; a padding query may see itself only, so no row is
        # empty. Padding rows are zeroed by `keep` afterwards.
        pos = torch.arange(length, device=seq.device)
        itself = pos.unsqueeze(1) == pos.unsqueeze(0)
        mask = CausalMask() & (KeyPaddingMask(valid) | BoolMask(itself))
        for block in self.blocks:
            x = block(x, mask, keep)
        return self.final_norm(x)

    @property
    def item_embeddings(self) -> Tensor:
        """``(N + 1, D)`` item embedding table (row 0 = padding)."""
        return self.item_emb.weight

    def score_all(self, hidden: Tensor) -> Tensor:
        """Scores of every item: ``hidden (..., D)`` -> ``(..., N + 1)`` (column 0 is padding)."""
        return hidden @ self.item_emb.weight.T

    def _histories(self, histories: History) -> tuple[list[Tensor], bool]:
        if isinstance(histories, Tensor):
            if histories.dim() == 1:
                return [histories.long()], True
            if histories.dim() == 2:
                return [row[row != 0].long() for row in histories], False
            raise ValueError(f"histories tensor must be 1-D or 2-D (B, H), got {tuple(histories.shape)}")
        if len(histories) == 0:
            raise ValueError("histories is empty; pass one history (list of item ids) or a list of them")
        if isinstance(histories[0], Integral):
            return [torch.as_tensor(list(histories), dtype=torch.long)], True
        out = []
        for h in histories:
            if isinstance(h, Integral):
                raise ValueError("histories mixes item ids and lists; pass a list of ids or a list of lists")
            out.append(torch.as_tensor(list(h), dtype=torch.long))  # type: ignore[arg-type]
        return out, False

    @torch.no_grad()
    def recommend(self, histories: History, k: int = 10, exclude_seen: bool = True) -> tuple[Tensor, Tensor]:
        """Top-``k`` next items for one history or a batch of variable-length histories.

        Histories longer than ``max_len`` use their most recent ``max_len`` items as input; with
        ``exclude_seen`` every item of the full history is excluded from the result.

        Args:
            histories: item ids ``1..N`` oldest first: a list of ints (one user), a list of lists, a 1-D
                tensor, or a 2-D tensor ``(B, H)`` where ``0`` entries are padding.
            k: number of items to return.
            exclude_seen: never recommend an item already in the history.

        Returns:
            ``(item_ids, scores)``, each ``(k,)`` for one history or ``(B, k)`` for a batch.

        Raises:
            ValueError: an empty history, an id outside ``1..N``, or ``k`` larger than the items available.

        """
        hs, single = self._histories(histories)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        for i, h in enumerate(hs):
            if h.numel() == 0:
                raise ValueError(f"history {i} is empty; SASRec needs at least one item to recommend from "
                                 "(use a popularity fallback for cold-start users)")
            bad = h[(h < 1) | (h > self.num_items)]
            if bad.numel():
                raise ValueError(f"history {i} has unknown item id {int(bad[0])}; this model knows ids "
                                 f"1..{self.num_items} -- map new items to known ids or drop them")
        avail = self.num_items - (max(len(set(h.tolist())) for h in hs) if exclude_seen else 0)
        if k > avail:
            raise ValueError(f"k={k} is more than the {avail} items left to recommend; lower k")
        dev = self.item_emb.weight.device
        seq = torch.zeros(len(hs), self.max_len, dtype=torch.long)
        for i, h in enumerate(hs):
            h = h[-self.max_len:]
            seq[i, self.max_len - len(h):] = h
        was_training = self.training
        self.eval()
        try:
            scores = self.score_all(self(seq.to(dev))[:, -1])
        finally:
            self.train(was_training)
        scores[:, 0] = float("-inf")
        if exclude_seen:
            for i, h in enumerate(hs):
                scores[i, h.to(dev)] = float("-inf")
        top = scores.topk(k, dim=-1)
        ids, vals = top.indices, top.values
        return (ids[0], vals[0]) if single else (ids, vals)


class SASRecScorer(nn.Module):
    """Serving wrapper: left-padded ``seq (B, L)`` -> scores of all items ``(B, N + 1)`` at the last position.

    Traceable for TorchScript and ONNX export (see :func:`attnkit.recsys.export.export_onnx`).
    """

    def __init__(self, model: SASRec) -> None:
        super().__init__()
        self.model = model

    def forward(self, seq: Tensor) -> Tensor:
        """Scores ``(B, N + 1)``; column 0 is padding."""
        return self.model.score_all(self.model(seq)[:, -1])


def sasrec_paper(num_items: int, max_len: int = 50) -> SASRec:
    """SASRec with the paper's Amazon / Steam settings (D=50, 2 blocks, 1 head, dropout 0.5)."""
    return SASRec(num_items, embed_dim=50, num_heads=1, num_layers=2, max_len=max_len, dropout=0.5)


def sasrec_ml1m(num_items: int) -> SASRec:
    """SASRec with the paper's MovieLens-1M settings (max_len 200, dropout 0.2)."""
    return SASRec(num_items, embed_dim=50, num_heads=1, num_layers=2, max_len=200, dropout=0.2)
