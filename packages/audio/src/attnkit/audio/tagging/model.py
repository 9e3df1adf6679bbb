"""Self-attention music tagger (Won, Chun & Serra 2019).

"Toward interpretable music tagging with self-attention": a short CNN front-end on log-mel
spectrograms summarised over time by a transformer
encoder with a class token, and a sigmoid multi-label head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from attnkit.audio.tagging.frontend import LogMel
from attnkit.core import TransformerEncoder, TransformerEncoderLayer
from attnkit.core.attention import Backend
from attnkit.core.models import configurable

__all__ = ["ResBlock2d", "SelfAttentionTagger", "won2019_paper", "won2019_small"]


class ResBlock2d(nn.Module):
    """3x3 conv-BN-ReLU-conv-BN with a (projected) shortcut, then ReLU; strides the input by ``stride``."""

    def __init__(self, in_ch: int, out_ch: int, stride: int | tuple[int, int] = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        s = (stride, stride) if isinstance(stride, int) else tuple(stride)
        self.shortcut: nn.Module = nn.Identity()
        if s != (1, 1) or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out_ch)
            )
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, F, T) -> (B, C_out, F / s_f, T / s_t)``."""
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + self.shortcut(x))


@configurable
class SelfAttentionTagger(nn.Module):
    """CNN front-end + transformer encoder over time with a class token + sigmoid multi-label head.

    The front-end is a stack of residual 3x3 blocks; the first ``num_time_pool`` blocks halve both
    frequency and time, the rest halve frequency only, and the remaining frequency axis is max-pooled away,
    giving one ``embed_dim`` vector per time step (every ``hop_length * 2**num_time_pool`` samples). A
    learned class token is prepended, learned positional embeddings are added, and post-norm encoder
    layers (BERT style, from :mod:`attnkit.core`) relate the time steps; the class token's output goes
    through a tanh pooler, dropout and a linear layer giving one logit per tag.

    Args:
        num_tags: number of tags ``K``.
        sample_rate: input rate in Hz.
        n_fft: FFT size of the mel spectrogram.
        hop_length: hop of the mel spectrogram.
        n_mels: mel bands.
        channels: output channels of each front-end block (its length is the number of blocks).
        num_time_pool: how many of the first blocks also halve time.
        embed_dim: transformer width (the last front-end block is projected to it when they differ).
        num_heads: attention heads.
        num_layers: encoder layers.
        ffn_dim: feed-forward width (default ``4 * embed_dim``).
        dropout: dropout in the encoder layers.
        attn_dropout: dropout on attention weights.
        head_dropout: dropout before the output layer.
        max_len: longest sequence of time steps (positional table size).
        backend: attention backend of :func:`attnkit.core.attention`.

    """

    def __init__(
        self,
        num_tags: int,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 256,
        n_mels: int = 128,
        channels: tuple[int, ...] | list[int] = (128, 128, 256, 256, 256, 256, 256),
        num_time_pool: int = 3,
        embed_dim: int = 256,
        num_heads: int = 8,
        num_layers: int = 2,
        ffn_dim: int | None = None,
        dropout: float = 0.4,
        attn_dropout: float = 0.5,
        head_dropout: float = 0.5,
        max_len: int = 700,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        channels = tuple(int(c) for c in channels)
        self.config: dict[str, Any] = {
            "num_tags": num_tags,
            "sample_rate": sample_rate,
            "n_fft": n_fft,
            "hop_length": hop_length,
            "n_mels": n_mels,
            "channels": list(channels),
            "num_time_pool": num_time_pool,
            "embed_dim": embed_dim,
            "num_heads": num_heads,
            "num_layers": num_layers,
            "ffn_dim": ffn_dim,
            "dropout": dropout,
            "attn_dropout": attn_dropout,
            "head_dropout": head_dropout,
            "max_len": max_len,
            "backend": backend,
        }
        self.sample_rate = sample_rate
        self.frame_hop = hop_length * 2 ** min(num_time_pool, len(channels))
        self.spec = LogMel(sample_rate, n_fft, hop_length, n_mels)
        blocks, c_in = [], 1
        for i, c in enumerate(channels):
            blocks.append(ResBlock2d(c_in, c, stride=2 if i < num_time_pool else (2, 1)))
            c_in = c
        self.frontend = nn.Sequential(*blocks)
        self.proj: nn.Module = nn.Identity() if c_in == embed_dim else nn.Linear(c_in, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos = nn.Parameter(torch.zeros(1, max_len + 1, embed_dim))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        self.embed_norm = nn.LayerNorm(embed_dim)
        self.embed_dropout = nn.Dropout(dropout)
        layer = TransformerEncoderLayer(
            embed_dim,
            num_heads,
            ffn_dim or 4 * embed_dim,
            dropout=dropout,
            attn_dropout=attn_dropout,
            activation="gelu",
            norm_first=False,
            backend=backend,
        )
        self.encoder = TransformerEncoder(layer, num_layers)
        self.pooler = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.Tanh())
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(embed_dim, num_tags))
        self.max_len = max_len

    def features(self, wav: Tensor) -> Tensor:
        """Front-end sequence ``(B, N) -> (B, T', embed_dim)``."""
        x = self.frontend(self.spec(wav))  # (B, C, F', T')
        x = x.amax(dim=2).transpose(1, 2)  # (B, T', C)
        return self.proj(x)

    def forward(self, wav: Tensor, *, need_weights: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Tag logits for waveforms.

        Args:
            wav: ``(B, N)`` mono audio at ``sample_rate``.
            need_weights: also return the attention weights of every layer.

        Returns:
            logits ``(B, K)``; with ``need_weights`` also a list of ``(B, H, 1 + T', 1 + T')`` per layer
            (index 0 is the class token).

        """
        x = self.features(wav)
        b, t, _ = x.shape
        if t > self.max_len:
            raise ValueError(
                f"input gives {t} time steps but max_len={self.max_len}; use shorter chunks "
                f"(at most {self.max_len * self.frame_hop / self.sample_rate:.1f} s) or a larger max_len"
            )
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1) + self.pos[:, : t + 1]
        x, weights = self.encoder(self.embed_dropout(self.embed_norm(x)), need_weights=need_weights)
        logits = self.head(self.pooler(x[:, 0]))
        return (logits, weights) if need_weights else logits


def won2019_paper(num_tags: int = 50) -> SelfAttentionTagger:
    """Build the paper's setting.

    As in the authors' ``CNNSA``: 16 kHz, 128 mels, 7 residual blocks
    (128-128-256-256-256-256-256 channels, time halved 3 times), 2 encoder layers of width 256 with
    8 heads and 1024 feed-forward, dropout 0.4 / attention dropout 0.5, trained on 15 s chunks.
    """
    return SelfAttentionTagger(num_tags)


def won2019_small(num_tags: int = 50) -> SelfAttentionTagger:
    """Build a CPU-sized variant (same structure, 96 mels, 5 blocks of 32-64 channels, width 64, 4 heads)."""
    return SelfAttentionTagger(
        num_tags,
        n_mels=96,
        channels=(32, 32, 64, 64, 64),
        num_time_pool=3,
        embed_dim=64,
        num_heads=4,
        num_layers=2,
        dropout=0.1,
        attn_dropout=0.1,
        head_dropout=0.3,
    )
