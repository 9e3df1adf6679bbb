"""TransDAE-style network (Azad et al. 2024): hierarchical dual-attention transformer U-Net.

The efficient attention of Shen et al. (2021) is two softmaxes and two matmuls (its reference form, two
:func:`attnkit.core.attention` calls against identity matrices, runs with ``backend="math"``); the
transposed (channel) attention of XCiT is one ``attention()`` call whose tokens are the channels. Every
block works on tokens ``(B, N, C)`` and takes ``spatial_dims`` 2 (images) or 3 (volumes) for its
convolutions, so ``(B, C, D, H, W)`` inputs work with ``spatial_dims=3``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnkit.core import attention
from attnkit.core.attention import Backend
from attnkit.core.models import configurable
from attnkit.vision.models.blocks import dilated_conv, segformer_init, sequential_concat, smp_decoder_init

__all__ = [
    "ChannelTransposedAttention",
    "DualAttentionBlock",
    "EfficientSpatialAttention",
    "InterScaleInteraction",
    "TransDAE",
    "efficient_attention",
]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_BN = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_AVG = {2: F.avg_pool2d, 3: F.avg_pool3d}
_LINEAR_MODE = {2: "bilinear", 3: "trilinear"}


def _check_dims(spatial_dims: int) -> None:
    if spatial_dims not in _CONV:
        raise ValueError(f"spatial_dims must be 2 (images) or 3 (volumes), got {spatial_dims}")


def _tokens(x: Tensor) -> Tensor:
    """``(B, C, *S) -> (B, N, C)``."""
    return x.flatten(2).transpose(1, 2)


def _map(t: Tensor, sizes: Sequence[int]) -> Tensor:
    """``(B, N, C) -> (B, C, *S)``."""
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], *sizes)


def _heads(t: Tensor, h: int) -> Tensor:
    """``(B, N, C) -> (B, h, N, C / h)``."""
    b, n, c = t.shape
    return t.view(b, n, h, c // h).transpose(1, 2)


def _merge(t: Tensor) -> Tensor:
    """``(B, h, N, d) -> (B, N, h d)``."""
    b, h, n, d = t.shape
    return t.transpose(1, 2).reshape(b, n, h * d)


def efficient_attention(q: Tensor, k: Tensor, v: Tensor, *, backend: Backend = "auto") -> Tensor:
    """Efficient attention (Shen et al. 2021): ``softmax_d(Q) (softmax_N(K)^T V)``, linear in ``N``.

    ``softmax_N(K)^T V`` is the ``d x dv`` global context (row ``j`` weights the tokens by
    ``softmax_n K[n, j]``); every query mixes its rows by ``softmax_d(Q)``. Computed directly: two softmaxes
    and two matmuls. ``backend="math"`` runs the reference formulation instead, two
    :func:`attnkit.core.attention` calls against ``d x d`` identity matrices
    (``attention(I, K, V, scale=1) = softmax_N(K)^T V``, ``attention(Q, I, G, scale=1) = softmax_d(Q) G``),
    which computes the same thing through a full attention kernel.

    Args:
        q: queries ``(B, h, Nq, d)``.
        k: keys ``(B, h, Nk, d)``.
        v: values ``(B, h, Nk, dv)``.
        backend: ``"math"`` for the identity-matrix reference; any other value runs the direct form.

    Returns:
        ``(B, h, Nq, dv)``.

    """
    if backend == "math":
        d = q.shape[-1]
        eye = torch.eye(d, device=q.device, dtype=q.dtype).expand(q.shape[0], q.shape[1], d, d).contiguous()
        context = attention(eye, k, v, scale=1.0, backend="math")  # (B, h, d, dv)
        assert isinstance(context, Tensor)
        out = attention(q, eye, context, scale=1.0, backend="math")
        assert isinstance(out, Tensor)
        return out
    return _read_context(q, _global_context(k, v))


def _global_context(k: Tensor, v: Tensor) -> Tensor:
    """Efficient attention's ``softmax_N(K)^T V``: ``(B, h, Nk, d), (B, h, Nk, dv) -> (B, h, d, dv)``."""
    return torch.matmul(k.softmax(dim=-2).transpose(-2, -1), v)


def _read_context(q: Tensor, context: Tensor) -> Tensor:
    """Efficient attention's ``softmax_d(Q) G``: ``(B, h, Nq, d), (B, h, d, dv) -> (B, h, Nq, dv)``."""
    return torch.matmul(q.softmax(dim=-1), context)


class EfficientSpatialAttention(nn.Module):
    """Efficient spatial self-attention with spatial reduction of keys and values.

    Keys and values come from the map average-pooled by ``sr_ratio`` (``ceil_mode``, so any size works),
    projected and layer-normed (PVT / SegFormer's spatial reduction); the attention itself is
    :func:`efficient_attention`, linear in the number of tokens.

    Args:
        dim: token width ``C``.
        num_heads: heads (``C`` must divide by it).
        sr_ratio: spatial reduction of keys / values (1 = none).
        spatial_dims: 2 or 3.
        backend: attention backend.

    Shapes:
        tokens ``(B, N, C)`` with ``N = prod(sizes)`` -> ``(B, N, C)``.

    """

    def __init__(self, dim: int, num_heads: int, *, sr_ratio: int = 1, spatial_dims: int = 2,
                 backend: Backend = "auto") -> None:
        super().__init__()
        _check_dims(spatial_dims)
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads, self.sr_ratio, self.spatial_dims, self.backend = num_heads, sr_ratio, spatial_dims, backend
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.sr = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim)) if sr_ratio > 1 else None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, sizes: Sequence[int]) -> Tensor:
        """Attend over tokens ``x (B, N, C)`` of a map with spatial ``sizes``; returns ``(B, N, C)``."""
        h = self.num_heads
        q = _heads(self.q(x), h)
        src = x
        if self.sr is not None:
            pooled = _AVG[self.spatial_dims](_map(x, sizes), self.sr_ratio, ceil_mode=True)
            src = self.sr(_tokens(pooled))
        k, v = self.kv(src).chunk(2, dim=-1)
        out = efficient_attention(q, _heads(k, h), _heads(v, h), backend=self.backend)
        return self.proj(_merge(out))


class ChannelTransposedAttention(nn.Module):
    """Transposed (cross-covariance) attention over channels, as in XCiT and DAE-Former / TransDAE.

    Per head, the ``d`` channels are the tokens and the ``N`` positions their features: queries and keys
    are L2-normalised along ``N`` and scaled by a learned per-head temperature, so the ``d x d`` attention
    costs ``O(N d^2)`` -- linear in the number of positions. With an explicit ``backend`` it runs as one
    :func:`attnkit.core.attention` call on ``(B, h, d, N)``; with ``"auto"`` (the default) as two matrix
    products on the token layout ``(B, h, N, d)`` (``(Q^T K)`` then ``V A^T``): the same function, without
    transposing copies and without a fused kernel's poor fit to a "head dimension" of ``N`` (a ``4 x 4096 x 64``
    stage of TransDAE, forward + backward of the whole block on a 1-thread CPU: 68 ms instead of 90 ms).

    Args:
        dim: token width ``C``.
        num_heads: heads (``C`` must divide by it).
        backend: ``"auto"`` for the direct products, or an attention backend.

    Shapes:
        ``(B, N, C) -> (B, N, C)``.

    """

    def __init__(self, dim: int, num_heads: int, *, backend: Backend = "auto") -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads, self.backend = num_heads, backend
        self.qkv = nn.Linear(dim, 3 * dim)
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, N, C) -> (B, N, C)``."""
        h = self.num_heads
        if self.backend == "auto":
            q, k, v = (_heads(t, h) for t in self.qkv(x).chunk(3, dim=-1))  # (B, h, N, d)
            if q.dtype in (torch.float32, torch.float64):
                # Normalising q and k along N scales row i / column j of Q^T K by 1 / max(|q_i|, eps) and
                # 1 / max(|k_j|, eps): scale the d x d product instead of two N x d tensors (the same
                # function; the whole module on TransDAE's stage 1, 4 x 4096 x 64, one CPU thread: forward
                # 25.6 -> 18.4 ms, forward + backward 80.4 -> 64.3 ms). max(|q|, eps) = sqrt(max(|q|^2, eps^2)),
                # so rsqrt of the clamped sum of squares, whose gradient stays finite for an all-zero channel.
                eps2 = 1e-24
                inv_q = q.square().sum(dim=-2).clamp_min(eps2).rsqrt()  # (B, h, d)
                inv_k = k.square().sum(dim=-2).clamp_min(eps2).rsqrt()
                scores = torch.matmul(q.transpose(-2, -1), k)
                scores = scores * (inv_q * self.temperature.squeeze(-1)).unsqueeze(-1) * inv_k.unsqueeze(-2)
            else:
                # half precision: unnormalised N-long dot products can leave float16's range; normalise first
                q = F.normalize(q, dim=-2) * self.temperature.transpose(-2, -1)
                scores = torch.matmul(q.transpose(-2, -1), F.normalize(k, dim=-2))
            weights = torch.softmax(scores, dim=-1)  # (B, h, d, d)
            return self.proj(_merge(torch.matmul(v, weights.transpose(-2, -1))))
        q, k, v = (_heads(t, h).transpose(-2, -1) for t in self.qkv(x).chunk(3, dim=-1))  # (B, h, d, N)
        q = F.normalize(q, dim=-1) * self.temperature
        k = F.normalize(k, dim=-1)
        out = attention(q, k, v.contiguous(), scale=1.0, backend=self.backend)  # (B, h, d, N)
        assert isinstance(out, Tensor)
        return self.proj(_merge(out.transpose(-2, -1)))


class MixFFN(nn.Module):
    """Linear -> depthwise 3x3(x3) conv -> GELU -> linear on tokens ``(B, N, C)`` (SegFormer's Mix-FFN)."""

    def __init__(self, dim: int, hidden: int, *, spatial_dims: int = 2) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dw = _CONV[spatial_dims](hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, sizes: Sequence[int]) -> Tensor:
        """``(B, N, C) -> (B, N, C)``."""
        y = self.fc1(x)
        y = _tokens(self.dw(_map(y, sizes)))
        return self.fc2(F.gelu(y))


class DualAttentionBlock(nn.Module):
    """Efficient dual attention transformer block (DAE-Former / TransDAE).

    ``x += ESA(LN x); x += FFN(LN x); x += CA(LN x); x += FFN'(LN x)``: efficient spatial attention
    (:class:`EfficientSpatialAttention`) and channel attention (:class:`ChannelTransposedAttention`) in
    sequence, each followed by a Mix-FFN.

    Args:
        dim: token width.
        num_heads: heads of both attentions.
        sr_ratio: spatial reduction of the spatial attention's keys / values.
        mlp_ratio: hidden width of the Mix-FFNs over ``dim``.
        spatial_dims: 2 or 3.
        backend: attention backend.

    Shapes:
        ``(B, N, C) -> (B, N, C)``.

    """

    def __init__(self, dim: int, num_heads: int, *, sr_ratio: int = 1, mlp_ratio: float = 4.0,
                 spatial_dims: int = 2, backend: Backend = "auto") -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1, self.norm2, self.norm3, self.norm4 = (nn.LayerNorm(dim) for _ in range(4))
        self.spatial = EfficientSpatialAttention(dim, num_heads, sr_ratio=sr_ratio, spatial_dims=spatial_dims,
                                                 backend=backend)
        self.ffn1 = MixFFN(dim, hidden, spatial_dims=spatial_dims)
        self.channel = ChannelTransposedAttention(dim, num_heads, backend=backend)
        self.ffn2 = MixFFN(dim, hidden, spatial_dims=spatial_dims)

    def forward(self, x: Tensor, sizes: Sequence[int]) -> Tensor:
        """``(B, N, C) -> (B, N, C)`` for a map with spatial ``sizes``."""
        x = x + self.spatial(self.norm1(x), sizes)
        x = x + self.ffn1(self.norm2(x), sizes)
        x = x + self.channel(self.norm3(x))
        return x + self.ffn2(self.norm4(x), sizes)


class LargeKernelAttention(nn.Module):
    """Decomposed large-kernel attention (VAN): depthwise 5 -> depthwise 7 dilated 3 -> 1x1, gating the input.

    Covers a 21-wide receptive field with ``O(C)`` depthwise weights; ``y = x * LKA(x)``.
    """

    def __init__(self, channels: int, *, spatial_dims: int = 2) -> None:
        super().__init__()
        conv = _CONV[spatial_dims]
        self.local = conv(channels, channels, 5, padding=2, groups=channels)
        self.dilated = conv(channels, channels, 7, padding=9, dilation=3, groups=channels)
        self.mix = conv(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, *S) -> (B, C, *S)``."""
        return x * self.mix(dilated_conv(self.dilated, self.local(x)))


class InterScaleInteraction(nn.Module):
    """Inter-scale interaction on the skip path: every scale attends to the tokens of all scales.

    Each encoder map is projected to a common width ``dim`` and layer-normed; the tokens of all scales are
    concatenated into one key / value set, and the tokens of each skip scale query it with
    :func:`efficient_attention` (linear in the total token count). The result is projected back to the
    scale's width and added to the skip, which then passes a residual decomposed large-kernel attention
    (:class:`LargeKernelAttention`).

    Args:
        channels: widths of the encoder maps, finest first.
        num_skips: how many of the finest maps are skips (updated); all maps serve as keys / values.
        dim: common width of the interaction.
        num_heads: heads.
        spatial_dims: 2 or 3.
        backend: attention backend.

    Shapes:
        list of ``(B, C_i, *S_i)`` -> the same list with the first ``num_skips`` maps updated.

    """

    def __init__(self, channels: Sequence[int], *, num_skips: int, dim: int = 64, num_heads: int = 2,
                 spatial_dims: int = 2, backend: Backend = "auto") -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"inter-scale dim={dim} must be divisible by num_heads={num_heads}")
        if not 1 <= num_skips <= len(channels):
            raise ValueError(f"num_skips={num_skips} must be between 1 and {len(channels)}")
        self.num_skips, self.num_heads, self.backend = num_skips, num_heads, backend
        self.inp = nn.ModuleList(nn.Sequential(nn.Linear(c, dim), nn.LayerNorm(dim)) for c in channels)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.ModuleList(nn.Linear(dim, c) for c in channels[:num_skips])
        self.lka = nn.ModuleList(LargeKernelAttention(c, spatial_dims=spatial_dims) for c in channels[:num_skips])

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Update the finest ``num_skips`` maps of ``feats`` (finest first)."""
        if len(feats) != len(self.inp):
            raise ValueError(f"expected {len(self.inp)} feature maps, got {len(feats)}")
        toks = [proj(_tokens(f)) for proj, f in zip(self.inp, feats, strict=True)]
        h = self.num_heads
        k, v = self.kv(torch.cat(toks, dim=1)).chunk(2, dim=-1)
        k, v = _heads(k, h), _heads(v, h)
        # Every skip queries the same keys and values: with the direct form, their global context
        # softmax_N(K)^T V is computed once, not once per skip (the same function; the "math" reference
        # keeps one full efficient_attention() per skip).
        context = None if self.backend == "math" else _global_context(k, v)
        out = list(feats)
        for i in range(self.num_skips):
            q = _heads(self.q(toks[i]), h)
            a = efficient_attention(q, k, v, backend="math") if context is None else _read_context(q, context)
            z = _merge(a)
            s = feats[i] + _map(self.out[i](z), feats[i].shape[2:])
            out[i] = s + self.lka[i](s)
        return out


class _ConvBlock(nn.Sequential):
    """Two ``3x3(x3) conv -> BN -> ReLU``."""

    def __init__(self, cin: int, cout: int, spatial_dims: int) -> None:
        conv, bn = _CONV[spatial_dims], _BN[spatial_dims]
        super().__init__(conv(cin, cout, 3, padding=1, bias=False), bn(cout), nn.ReLU(inplace=True),
                         conv(cout, cout, 3, padding=1, bias=False), bn(cout), nn.ReLU(inplace=True))


@configurable
class TransDAE(nn.Module):
    """TransDAE-style segmentation network (Azad, Adibfar & Fu 2024), a hierarchical dual-attention U-Net.

    What follows the paper: a hierarchical transformer encoder of ``len(dims)`` stages (overlapping patch
    embedding ``7x7 / 4`` then patch merging ``3x3 / 2``, as in SegFormer / DAE-Former), built from dual
    attention blocks (:class:`DualAttentionBlock`): efficient spatial attention (Shen et al.'s efficient
    attention with spatial reduction of keys and values) and transposed channel attention, each with a
    Mix-FFN; an inter-scale interaction module on the skip path (:class:`InterScaleInteraction`: attention
    from each skip scale to the tokens of all scales, plus a decomposed large-kernel attention); a U-shaped
    decoder that fuses the skips from coarse to fine and a final x4 expansion to the input resolution.

    Simplifications (this is TransDAE-*style*): the decoder stages are convolutional (upsample, concat skip,
    two 3x3 conv-BN-ReLU) instead of transformer blocks with patch expanding; the final x4 expansion is two
    bilinear x2 upsamplings with conv blocks; the inter-scale module's exact layout (the paper decomposes
    large-kernel operations to fuse encoder and decoder features) is approximated by cross-scale efficient
    attention followed by VAN's decomposed large-kernel attention; stage widths / depths default to a small
    model, not the paper's; no pretraining. Inputs of any size are zero-padded to a multiple of the stride
    (``4 * 2**(stages - 1)``) and the logits cropped back.

    Args:
        in_channels: image channels.
        num_classes: output classes ``K``.
        dims: widths of the encoder stages, finest first.
        depths: dual attention blocks per stage.
        num_heads: heads per stage.
        sr_ratios: spatial reduction of keys / values per stage.
        mlp_ratio: Mix-FFN hidden width over the stage width.
        decoder_channels: widths of the decoder stages, coarsest first (``len(dims) - 1`` entries), then the
            two x2 expansion stages (2 more entries).
        interaction_dim: width of the inter-scale interaction (``0`` disables the module).
        interaction_heads: its heads.
        spatial_dims: 2 for images ``(B, C, H, W)``, 3 for volumes ``(B, C, D, H, W)``.
        backend: attention backend for every attention call.
        fine_skips: add two convolutional skips from the input (``3x3(x3) conv -> BN -> ReLU`` at stride 2 and
            at full resolution, as wide as the expansion stage they feed) to the two x2 expansion stages. The
            paper's decoder has no skip finer than stride 4, so the expansion must rebuild every detail from
            stride-4 features: on DRIVE's 1-10 pixel vessels that left the model 0.2-0.6 above a U-Net's
            training loss after 40 steps, and at two seeds of three still predicting background after 100
            (issue #16). ``False``: the paper's layout.
        stem: how the first stage embeds the input (stride 4). ``"patch"``: one overlapping ``7x7(x7) / 4``
            convolution, as SegFormer / the paper. ``"conv"``: a convolutional stem (Xiao et al. 2021, "Early
            convolutions help transformers see better"): ``3x3(x3) / 2 conv -> BN -> ReLU`` to ``dims[0] // 2``
            channels, another to ``dims[0]``, then a ``1x1(x1)`` projection; Xiao et al. found it made vision
            transformers train faster and less sensitive to the learning rate and optimiser.
        init: starting weights. ``"segformer"``: the encoder and the skip-path interaction as SegFormer
            initialises MiT (:func:`~attnkit.vision.models.blocks.segformer_init`: truncated-normal 0.02
            linear layers, fan-out normal convolutions) and the convolutional decoder and head as smp
            initialises its U-Net (:func:`~attnkit.vision.models.blocks.smp_decoder_init`). ``"pytorch"``:
            PyTorch's layer defaults everywhere (linear weights of std ``1/sqrt(3 fan_in)``: 3.6x MiT's at
            width 64, below it past fan-in 834; decoder convolutions 2.45x smaller than smp's), the init used
            until issue #16: on DRIVE it did not learn in 100 steps.

    Shapes:
        ``(B, in_channels, *S) -> (B, K, *S)`` logits, ``S`` of length ``spatial_dims``, any size.

    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        *,
        dims: Sequence[int] = (32, 64, 160, 256),
        depths: Sequence[int] = (1, 1, 2, 1),
        num_heads: Sequence[int] = (1, 2, 5, 8),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        mlp_ratio: float = 4.0,
        decoder_channels: Sequence[int] = (160, 64, 32, 32, 16),
        interaction_dim: int = 64,
        interaction_heads: int = 2,
        spatial_dims: int = 2,
        backend: Backend = "auto",
        fine_skips: bool = False,
        stem: Literal["patch", "conv"] = "patch",
        init: Literal["segformer", "pytorch"] = "segformer",
    ) -> None:
        super().__init__()
        _check_dims(spatial_dims)
        if init not in ("segformer", "pytorch"):
            raise ValueError(f"init must be 'segformer' or 'pytorch', got {init!r}")
        if stem not in ("patch", "conv"):
            raise ValueError(f"stem must be 'patch' (the paper's 7x7 / 4 patch embedding) or 'conv' (a convolutional "
                             f"stem), got {stem!r}")
        n = len(dims)
        for name, seq in (("depths", depths), ("num_heads", num_heads), ("sr_ratios", sr_ratios)):
            if len(seq) != n:
                raise ValueError(f"{name} needs one entry per stage ({n}, as dims={tuple(dims)}), got {tuple(seq)}")
        if n < 2:
            raise ValueError(f"TransDAE needs at least 2 encoder stages, got dims={tuple(dims)}")
        if len(decoder_channels) != n + 1:
            raise ValueError(f"decoder_channels needs len(dims) + 1 = {n + 1} entries ({n - 1} decoder stages, "
                             f"2 expansion stages), got {tuple(decoder_channels)}")
        for d, h in zip(dims, num_heads, strict=True):
            if d % h:
                raise ValueError(f"stage width {d} is not divisible by its num_heads {h}")
        conv = _CONV[spatial_dims]
        self.spatial_dims, self.num_classes, self.in_channels = spatial_dims, num_classes, in_channels
        self.stride = 4 * 2 ** (n - 1)
        self.embeds = nn.ModuleList()
        self.embed_norms = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.norms = nn.ModuleList()
        prev = in_channels
        bn = _BN[spatial_dims]
        for i, d in enumerate(dims):
            if i == 0 and stem == "conv":
                h = max(d // 2, 1)
                self.embeds.append(nn.Sequential(
                    conv(prev, h, 3, stride=2, padding=1, bias=False), bn(h), nn.ReLU(inplace=True),
                    conv(h, d, 3, stride=2, padding=1, bias=False), bn(d), nn.ReLU(inplace=True),
                    conv(d, d, 1),
                ))
            else:
                k, s = (7, 4) if i == 0 else (3, 2)
                self.embeds.append(conv(prev, d, k, stride=s, padding=k // 2))
            self.embed_norms.append(nn.LayerNorm(d))
            self.stages.append(nn.ModuleList(
                DualAttentionBlock(d, num_heads[i], sr_ratio=sr_ratios[i], mlp_ratio=mlp_ratio,
                                   spatial_dims=spatial_dims, backend=backend) for _ in range(depths[i])
            ))
            self.norms.append(nn.LayerNorm(d))
            prev = d
        self.interaction = (
            InterScaleInteraction(dims, num_skips=n - 1, dim=interaction_dim, num_heads=interaction_heads,
                                  spatial_dims=spatial_dims, backend=backend)
            if interaction_dim > 0 else None
        )
        skips = list(dims[:-1])[::-1]
        blocks = []
        for i, out_ch in enumerate(decoder_channels[: n - 1]):
            blocks.append(_ConvBlock(prev + skips[i], out_ch, spatial_dims))
            prev = out_ch
        self.decoder = nn.ModuleList(blocks)
        self.expand = nn.ModuleList()
        self.fine_skips = nn.ModuleList()
        for i, out_ch in enumerate(decoder_channels[n - 1:]):
            extra = 0
            if fine_skips:  # from the input, at the resolution this stage works at (stride 2, then 1)
                self.fine_skips.append(nn.Sequential(conv(in_channels, out_ch, 3, stride=2 - i, padding=1, bias=False),
                                                     bn(out_ch), nn.ReLU(inplace=True)))
                extra = out_ch
            self.expand.append(_ConvBlock(prev + extra, out_ch, spatial_dims))
            prev = out_ch
        self.head = conv(prev, num_classes, 1)
        if init == "segformer":
            segformer_init(nn.ModuleList([self.embeds, self.embed_norms, self.stages, self.norms]))
            if self.interaction is not None:
                segformer_init(self.interaction)
            smp_decoder_init(nn.ModuleList([self.decoder, self.expand, self.fine_skips]), self.head)

    def encode(self, x: Tensor) -> list[Tensor]:
        """Encoder maps ``(B, dims[i], *S / (4 * 2**i))``, finest first (input already padded)."""
        feats = []
        for embed, enorm, blocks, norm in zip(self.embeds, self.embed_norms, self.stages, self.norms, strict=True):
            x = embed(x)
            sizes = tuple(x.shape[2:])
            t = enorm(_tokens(x))
            for blk in blocks.children():
                t = blk(t, sizes)
            x = _map(norm(t), sizes)
            feats.append(x)
        return feats

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, K, *S)`` for ``x (B, C, *S)``."""
        nd = self.spatial_dims
        if x.dim() != nd + 2:
            raise ValueError(f"TransDAE(spatial_dims={nd}) expects (B, C, {', '.join('DHW'[3 - nd:])}) input, got "
                             f"shape {tuple(x.shape)}; build it with spatial_dims={x.dim() - 2} for this input")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"TransDAE was built for {self.in_channels} input channels, got "
                             f"{x.shape[1]} (shape {tuple(x.shape)}); set in_channels")
        sizes = tuple(x.shape[2:])
        pads: list[int] = []
        for s in reversed(sizes):
            pads += [0, (-s) % self.stride]
        if any(pads):
            x = F.pad(x, pads)
        feats = self.encode(x)
        if self.interaction is not None:
            feats = self.interaction(feats)
        mode = _LINEAR_MODE[nd]
        y = feats[-1]
        for skip, block in zip(feats[-2::-1], self.decoder, strict=True):
            y = F.interpolate(y, size=skip.shape[2:], mode=mode, align_corners=False)
            y = sequential_concat(block, [y, skip])
        for i, block in enumerate(self.expand):
            y = F.interpolate(y, scale_factor=2.0, mode=mode, align_corners=False)
            y = sequential_concat(block, [y, self.fine_skips[i](x)]) if len(self.fine_skips) else block(y)
        y = self.head(y)
        crop = (slice(None), slice(None), *(slice(0, s) for s in sizes))
        return y[crop]
