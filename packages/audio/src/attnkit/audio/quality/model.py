"""NISQA (Mittag et al., Interspeech 2021): framewise CNN, self-attention over time, attention pooling.

The layer order, normalisations and dropout positions follow the original code (github
gabrielmittag/NISQA, ``NISQA_lib.py``) so that the released weights load through
:mod:`attnkit.audio.quality.convert` and give the same predictions:

* :class:`AdaptCNN` on every ``(1, 48, 15)`` log-mel segment: six 3x3 conv + BatchNorm + ReLU blocks with
  adaptive max pooling to ``(24, 7)``, ``(12, 5)`` and ``(6, 3)``; the last conv collapses time -> 384
  features.
* Time dependency: ``Linear(384, 64)`` -> ``LayerNorm`` -> two post-norm encoder layers
  (:class:`attnkit.core.TransformerEncoderLayer`, one head, ReLU feed-forward 64 -> 64 -> 64), padded
  segments masked with :class:`attnkit.core.KeyPaddingMask`. No positional encoding.
* One :class:`PoolAttFF` head per output (MOS, then noisiness, discontinuity, coloration, loudness).
  Outputs are not squashed: they may leave ``[1, 5]``.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnkit.core import KeyPaddingMask, TransformerEncoder, TransformerEncoderLayer, attention
from attnkit.core.attention import Backend
from attnkit.core.models import configurable

__all__ = ["DIMENSIONS", "NISQA", "AdaptCNN", "PoolAttFF", "nisqa_dim", "nisqa_mos_only"]

#: Output order of the NISQA_DIM checkpoint (``nisqa.tar``): overall MOS, noisiness, discontinuity,
#: coloration, loudness.
DIMENSIONS: tuple[str, ...] = ("mos", "noi", "dis", "col", "loud")


def _uniform_windows(n_in: int, n_out: int) -> tuple[int, int] | None:
    """``(kernel, stride)`` if adaptive pooling from ``n_in`` to ``n_out`` uses equal, evenly spaced windows."""
    starts = [i * n_in // n_out for i in range(n_out)]
    sizes = {-(-(i + 1) * n_in // n_out) - b for i, b in enumerate(starts)}
    stride = starts[1] - starts[0] if n_out > 1 else 1
    if len(sizes) == 1 and all(b == i * stride for i, b in enumerate(starts)):
        return sizes.pop(), stride
    return None


def _adaptive_max_pool(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``F.adaptive_max_pool2d`` (exactly), as maxima of strided views where the windows are uniform.

    PyTorch's CPU max pooling is slow on NCHW tensors (what a one-channel convolution returns); the strided
    form is fast in any layout. Non-uniform windows go to ``adaptive_max_pool2d`` on a channels-last tensor.
    """
    h, w = x.shape[-2:]
    wins = (_uniform_windows(h, size[0]), _uniform_windows(w, size[1]))
    if wins[0] is None or wins[1] is None:
        return F.adaptive_max_pool2d(x.contiguous(memory_format=torch.channels_last), size)
    for dim, n_out, (k, s) in ((2, size[0], wins[0]), (3, size[1], wins[1])):  # H first: faster on conv1 output
        parts = [x.narrow(dim, j, s * (n_out - 1) + 1) for j in range(k)]
        if s > 1:
            parts = [p[:, :, :, ::s] if dim == 3 else p[:, :, ::s] for p in parts]
        out = parts[0]
        for p in parts[1:]:
            out = torch.maximum(out, p)
        x = out
    return x


class AdaptCNN(nn.Module):
    """NISQA's framewise CNN with adaptive max pooling.

    In eval mode with ``fused=True`` (the default) :meth:`forward` takes a fast inference path: each
    BatchNorm folded into its convolution (``w * g / sqrt(v + eps)``, ``(b - m) * g / sqrt(v + eps) + beta``),
    channels-last tensors, and the segments run ``chunk_size`` at a time so that the activations stay in
    cache. It computes the same function as the reference path (:meth:`forward_reference`, always used in
    training) up to float32 rounding (about 1e-5 on the features).

    Args:
        channels: output channels of conv1, conv2 and conv3..6.
        pools: adaptive max-pool output sizes after conv1, conv2 and conv4.
        dropout: ``Dropout2d`` rate (after pool2, conv3, pool3 and conv5, as in the original).
        fused: use the fused inference path in eval mode.
        chunk_size: segments per call of the fused path.

    Shapes:
        ``(N, 1, n_mels, seg_length) -> (N, channels[2] * pools[2][0])``.

    """

    def __init__(
        self,
        channels: tuple[int, int, int] = (16, 32, 64),
        pools: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] = ((24, 7), (12, 5), (6, 3)),
        dropout: float = 0.2,
        *,
        fused: bool = True,
        chunk_size: int = 256,
    ) -> None:
        super().__init__()
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.fused, self.chunk_size = fused, chunk_size
        c1, c2, c3 = channels
        self.pools: tuple[tuple[int, int], ...] = tuple((int(p[0]), int(p[1])) for p in pools)
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.conv4 = nn.Conv2d(c3, c3, 3, padding=1)
        self.conv5 = nn.Conv2d(c3, c3, 3, padding=1)
        self.conv6 = nn.Conv2d(c3, c3, (3, self.pools[2][1]), padding=(1, 0))
        self.bn1, self.bn2 = nn.BatchNorm2d(c1), nn.BatchNorm2d(c2)
        self.bn3, self.bn4, self.bn5, self.bn6 = (nn.BatchNorm2d(c3) for _ in range(4))
        self.dropout = nn.Dropout2d(dropout)
        self.out_dim = c3 * self.pools[2][0]

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 1, M, S) -> (N, out_dim)``: the fused path in eval mode (``fused``), else the reference."""
        if self.fused and not self.training and self._foldable():
            return self.forward_fused(x)
        return self.forward_reference(x)

    def _pairs(self) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
        return [(getattr(self, f"conv{i}"), getattr(self, f"bn{i}")) for i in range(1, 7)]

    def _foldable(self) -> bool:
        return all(bn.running_mean is not None and bn.running_var is not None for _, bn in self._pairs())

    def folded_parameters(self) -> list[tuple[Tensor, Tensor]]:
        """``(weight, bias)`` of conv1..6 with their eval-mode BatchNorm folded in (weights channels-last)."""
        out = []
        for conv, bn in self._pairs():
            assert bn.running_mean is not None and bn.running_var is not None
            scale = torch.rsqrt(bn.running_var + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight
            bias = -bn.running_mean if conv.bias is None else conv.bias - bn.running_mean
            bias = bias * scale
            if bn.bias is not None:
                bias = bias + bn.bias
            weight = (conv.weight * scale[:, None, None, None]).contiguous(memory_format=torch.channels_last)
            out.append((weight, bias))
        return out

    def forward_fused(self, x: Tensor) -> Tensor:
        """Eval-mode inference path (BatchNorm folded, channels-last, chunked): ``(N, 1, M, S) -> (N, out_dim)``."""
        params = self.folded_parameters()
        x = x.contiguous(memory_format=torch.channels_last)
        outs = [self._fused_chunk(chunk, params) for chunk in x.split(self.chunk_size)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _fused_chunk(self, x: Tensor, params: list[tuple[Tensor, Tensor]]) -> Tensor:
        def conv(x: Tensor, i: int) -> Tensor:
            c = getattr(self, f"conv{i + 1}")
            return F.conv2d(x, params[i][0], params[i][1], c.stride, c.padding)

        def pool_relu(x: Tensor, i: int) -> Tensor:  # max pooling and ReLU commute: ReLU on the smaller tensor
            y = F.relu(_adaptive_max_pool(x, self.pools[i]), inplace=True)
            return y.contiguous(memory_format=torch.channels_last)

        with torch.autocast(x.device.type, enabled=False):  # conv1 sees dB values: keep it float32 always
            x = pool_relu(conv(x.float(), 0), 0)
        x = pool_relu(conv(x, 1), 1)
        x = pool_relu(conv(F.relu(conv(x, 2), inplace=True), 3), 2)
        x = F.relu(conv(F.relu(conv(x, 4), inplace=True), 5), inplace=True)
        return x.flatten(1)

    def forward_reference(self, x: Tensor) -> Tensor:
        """The original layer sequence (conv, BatchNorm, ReLU, pooling, dropout): ``(N, 1, M, S) -> (N, out_dim)``."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.adaptive_max_pool2d(x, self.pools[0])
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.dropout(F.adaptive_max_pool2d(x, self.pools[1]))
        x = self.dropout(F.relu(self.bn3(self.conv3(x))))
        x = F.relu(self.bn4(self.conv4(x)))
        x = self.dropout(F.adaptive_max_pool2d(x, self.pools[2]))
        x = self.dropout(F.relu(self.bn5(self.conv5(x))))
        x = F.relu(self.bn6(self.conv6(x)))
        return x.flatten(1)


class PoolAttFF(nn.Module):
    """Attention pooling over time followed by a linear output (NISQA's ``PoolAttFF``).

    The weight of step ``t`` is ``softmax_t(w2 . relu(W1 x_t))``; this is attention with the learned query
    ``w2`` over keys ``relu(W1 x_t)`` and values ``x_t`` (scale 1), computed by
    :func:`attnkit.core.attention`.
    ``linear2``'s bias is kept for checkpoint compatibility; it cancels in the softmax, so it is frozen
    (its gradient is zero; a trainable parameter without a gradient would stop DDP training).

    Args:
        embed_dim: width ``D`` of the sequence.
        hidden_dim: width of the score MLP.
        dropout: dropout on the score MLP's hidden layer.

    Shapes:
        ``x (B, L, D)``, ``lengths (B,)`` -> ``(B, 1)``.

    """

    def __init__(self, embed_dim: int = 64, hidden_dim: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear1 = nn.Linear(embed_dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, 1)
        self.linear2.bias.requires_grad_(False)
        self.linear3 = nn.Linear(embed_dim, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, lengths: Tensor, *, return_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Pool ``(B, L, D)`` with valid lengths ``(B,)`` to one score per item ``(B, 1)``."""
        keys = self.dropout(F.relu(self.linear1(x))).unsqueeze(1)  # (B, 1, L, H)
        query = self.linear2.weight.view(1, 1, 1, -1).expand(x.shape[0], 1, 1, -1)
        mask = KeyPaddingMask(lengths.to(x.device))
        if return_weights:
            pooled, w = attention(query, keys, x.unsqueeze(1), mask, scale=1.0, backend="math", return_weights=True)
            return self.linear3(pooled.reshape(x.shape[0], -1)), w.reshape(x.shape[0], -1)
        pooled = attention(query, keys, x.unsqueeze(1), mask, scale=1.0)
        assert isinstance(pooled, Tensor)
        return self.linear3(pooled.reshape(x.shape[0], -1))


@configurable
class NISQA(nn.Module):
    """NISQA speech quality model: log-mel segments -> per-output quality scores.

    Args:
        output_names: one attention-pooling head per name (default: MOS + four dimensions, ``DIMENSIONS``).
        cnn_channels: AdaptCNN channels.
        cnn_pools: AdaptCNN adaptive pooling sizes (the first size's mel axis must not exceed ``n_mels``).
        cnn_dropout: AdaptCNN ``Dropout2d`` rate.
        embed_dim: self-attention width.
        num_heads: attention heads.
        num_layers: encoder layers.
        ffn_dim: feed-forward hidden width.
        dropout: dropout in the encoder (residual branches, feed-forward, attention weights).
        pool_hidden: hidden width of each attention-pooling head.
        pool_dropout: dropout in the pooling heads.
        backend: attention backend of the encoder (see :func:`attnkit.core.attention`).

    Shapes:
        ``segments (B, L, 1, n_mels, seg_length)`` (zero-padded beyond ``lengths``), ``lengths (B,)``
        -> ``(B, len(output_names))``.

    """

    def __init__(
        self,
        output_names: tuple[str, ...] | list[str] = DIMENSIONS,
        *,
        cnn_channels: tuple[int, int, int] = (16, 32, 64),
        cnn_pools: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] = ((24, 7), (12, 5), (6, 3)),
        cnn_dropout: float = 0.2,
        embed_dim: int = 64,
        num_heads: int = 1,
        num_layers: int = 2,
        ffn_dim: int = 64,
        dropout: float = 0.1,
        pool_hidden: int = 128,
        pool_dropout: float = 0.0,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        if not output_names:
            raise ValueError("output_names is empty; NISQA needs at least one output (e.g. ['mos'])")
        self.output_names = tuple(output_names)
        self.cnn = AdaptCNN(tuple(cnn_channels), tuple(tuple(p) for p in cnn_pools), cnn_dropout)  # type: ignore[arg-type]
        self.proj = nn.Linear(self.cnn.out_dim, embed_dim)
        self.norm = nn.LayerNorm(embed_dim)
        layer = TransformerEncoderLayer(
            embed_dim,
            num_heads,
            ffn_dim,
            dropout=dropout,
            activation="relu",
            norm_first=False,
            backend=backend,
        )  # type: ignore[arg-type]
        self.encoder = TransformerEncoder(layer, num_layers, final_norm=False)
        self.heads = nn.ModuleList([PoolAttFF(embed_dim, pool_hidden, pool_dropout) for _ in self.output_names])
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Xavier-uniform matrices of the time-dependency block, as the original initialises it."""
        for m in (self.proj, self.encoder):
            for p in m.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    def frame_features(self, segments: Tensor, lengths: Tensor) -> Tensor:
        """Run the CNN on valid segments only: ``(B, L, 1, M, S) -> (B, L, cnn.out_dim)`` (zeros beyond)."""
        b, seq = segments.shape[:2]
        valid = torch.arange(seq, device=segments.device)[None, :] < lengths.to(segments.device)[:, None]
        feats = self.cnn(segments[valid])
        out = feats.new_zeros(b, seq, feats.shape[-1])
        out[valid] = feats
        return out

    def encode(self, segments: Tensor, lengths: Tensor) -> Tensor:
        """Segments to time-dependent features ``(B, L, embed_dim)``."""
        feats = self.frame_features(segments, lengths)
        with self._float32_in_eval(feats):
            x = self.norm(self.proj(feats.float() if not self.training else feats))
            x, _ = self.encoder(x, KeyPaddingMask(lengths.to(x.device)))
        return x

    def _float32_in_eval(self, x: Tensor) -> torch.autocast | contextlib.nullcontext[None]:
        """In eval mode, autocast covers only the CNN (conv2..6): the attention part stays float32.

        bfloat16 everywhere moves the released model's predictions by up to 0.035; bfloat16 in conv2..6 only
        (the CNN holds nearly all the compute) by < 0.01 on the reference files.
        """
        return contextlib.nullcontext() if self.training else torch.autocast(x.device.type, enabled=False)

    def forward(self, segments: Tensor, lengths: Tensor) -> Tensor:
        """Scores ``(B, len(output_names))`` from padded ``segments (B, L, 1, M, S)`` and ``lengths (B,)``."""
        if segments.dim() == 4:
            segments = segments.unsqueeze(2)
        if segments.dim() != 5:
            raise ValueError(f"segments must be (B, L, 1, n_mels, seg_length), got {tuple(segments.shape)}")
        lengths = lengths.long()
        if (lengths < 1).any() or int(lengths.max()) > segments.shape[1]:
            raise ValueError(f"lengths must lie in [1, {segments.shape[1]}], got {lengths.tolist()}")
        x = self.encode(segments, lengths)
        with self._float32_in_eval(x):
            return torch.cat([head(x, lengths) for head in self.heads], dim=1)


def nisqa_dim() -> NISQA:
    """NISQA_DIM as released (``nisqa.tar``): MOS, noisiness, discontinuity, coloration, loudness."""
    return NISQA(DIMENSIONS)


def nisqa_mos_only() -> NISQA:
    """NISQA (MOS only) as released (``nisqa_mos_only.tar``)."""
    return NISQA(("mos",))
