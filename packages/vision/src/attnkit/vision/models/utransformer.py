"""U-Transformer (Petit et al. 2021) on any smp / timm encoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from attnkit.core import CrossAttentionGate2d, SpatialSelfAttention2d
from attnkit.core.attention import Backend
from attnkit.core.models import configurable
from attnkit.vision.models.blocks import ConvBlock, SegmentationHead, sequential_concat, smp_decoder_init
from attnkit.vision.models.encoders import build_encoder

__all__ = ["UTransformer", "check_input_size"]

OPEN_GATE_LOGIT = 3.0
"""Gate logit at init with ``attention_init="unet"``: every gate map starts at ``sigmoid(3) = 0.953``."""


def check_input_size(x: Tensor, stride: int, model: str) -> None:
    """Raise a clear error when ``x (B, C, H, W)`` is not divisible by the encoder's total stride."""
    if x.dim() != 4:
        raise ValueError(f"{model} expects images (B, C, H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % stride or w % stride:
        raise ValueError(
            f"{model}: input size {h}x{w} is not divisible by the encoder stride {stride}; pad the image, "
            f"crop patches of a multiple of {stride}, or use sliding-window inference with such a patch size"
        )


@configurable
class UTransformer(nn.Module):
    """U-Transformer: a U-Net with self-attention at the bottleneck and cross-attention gates on the skips.

    The encoder's deepest map goes through multi-head self-attention over all its positions with a 2D
    sinusoidal positional encoding (MHSA, :class:`attnkit.core.SpatialSelfAttention2d`). In each decoder
    stage the skip connection is filtered by a multi-head cross-attention gate (MHCA,
    :class:`attnkit.core.CrossAttentionGate2d`) whose queries and keys come from the coarser decoder map,
    then concatenated with the upsampled decoder map and convolved.

    Args:
        encoder_name: smp encoder name (``"resnet34"``, ``"tu-convnext_atto"``, ...).
        encoder_depth: downsampling stages of the encoder (3 to 5).
        encoder_weights: ``None`` (random init), a local weight file or an smp weight name.
        in_channels: image channels.
        num_classes: output classes ``K`` (2 for binary: background and foreground).
        decoder_channels: channels of the decoder stages, deepest first (``encoder_depth`` entries).
        num_heads: heads of the bottleneck self-attention.
        gate_heads: heads of the cross-attention gates (skip channels must divide by it).
        gated_skips: how many skips (counted from the deepest) get an MHCA gate; ``None`` gates all.
            The finest skips have the most tokens (``(H/4 * W/4)**2`` attention scores at the stride-2
            skip), so gating fewer saves memory at large patch sizes.
        gate_stride: the gates attend at this stride (of the input) or coarser: a gate whose decoder map is
            finer is max-pooled to it first (``CrossAttentionGate2d(pool=...)``), so no gate attends over
            more than ``(H / gate_stride) * (W / gate_stride)`` tokens. With 256x256 patches and
            ``gate_stride=8`` the finest gate attends over 1,024 instead of 4,096 positions (16x fewer
            scores). ``None`` (the default) attends at every decoder map's own resolution, as in the paper.
        dropout: attention dropout in the bottleneck.
        backend: attention backend for all attention blocks.
        attention_init: ``"unet"`` starts the model as a plain U-Net: the bottleneck self-attention's branch is
            scaled by a learnable scalar starting at 0 (``SpatialSelfAttention2d(zero_init=True)``, ReZero: the
            residual block is the identity and grows out of it over hundreds of steps) and every gate is open
            and uniform (``sigmoid(3) = 0.95`` at every position, see ``CrossAttentionGate2d(open_init=3.0)``),
            so the attention is learnt on top of a working U-Net. ``"paper"``: PyTorch's default init of
            every layer, as the paper (gate maps ~0.5 with per-position noise at init, the self-attention
            adding a random projection of the bottleneck). The ``"unet"`` model has one more parameter
            (``mhsa.gamma``); checkpoints load either way and compute the same function (the scalar is
            folded into the output projection, or set to 1 where a checkpoint lacks it).
        decoder_init: starting weights of the decoder's convolutions and the head. ``"smp"`` (default): as
            segmentation-models-pytorch initialises its U-Net (Kaiming-uniform with the ReLU gain for the
            decoder convolutions, Xavier-uniform for the head, zero biases); ``"pytorch"``: PyTorch's layer
            defaults (Kaiming-uniform with ``a = sqrt(5)``: 2.45x smaller weights), the init until issue
            #16. Behind batch norm the forward pass is the same, but Adam's per-element steps are then 2.45x
            larger relative to the weights, i.e. a larger effective learning rate in the decoder; at 100
            steps ``"smp"`` was 2.5-6.2 Dice points ahead in three of four runs (docs/benchmarks.md).
        branch_norm: layer-normalise the bottleneck self-attention's branch before its scalar
            (``SpatialSelfAttention2d(branch_norm=True)``, needs ``attention_init="unet"``), so the branch grows
            only as fast as the scalar. Without it the branch was 1.9-2.6x the bottleneck's norm after 300 steps
            on PH2 (docs/vision.md item 49).

    Shapes:
        ``(B, in_channels, H, W) -> (B, K, H, W)`` logits, ``H`` and ``W`` multiples of ``2**encoder_depth``.

    """

    def __init__(
        self,
        encoder_name: str = "resnet34",
        *,
        encoder_depth: int = 5,
        encoder_weights: str | None = None,
        in_channels: int = 3,
        num_classes: int = 2,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        num_heads: int = 8,
        gate_heads: int = 1,
        gated_skips: int | None = None,
        gate_stride: int | None = None,
        dropout: float = 0.0,
        backend: Backend = "auto",
        attention_init: Literal["unet", "paper"] = "unet",
        decoder_init: Literal["smp", "pytorch"] = "smp",
        branch_norm: bool = False,
    ) -> None:
        super().__init__()
        if len(decoder_channels) != encoder_depth:
            raise ValueError(f"decoder_channels needs encoder_depth={encoder_depth} entries, got "
                             f"{len(decoder_channels)}: {tuple(decoder_channels)}")
        if attention_init not in ("unet", "paper"):
            raise ValueError(f"attention_init must be 'unet' or 'paper', got {attention_init!r}")
        if decoder_init not in ("smp", "pytorch"):
            raise ValueError(f"decoder_init must be 'smp' or 'pytorch', got {decoder_init!r}")
        unet_init = attention_init == "unet"
        if branch_norm and not unet_init:
            raise ValueError("branch_norm=True needs attention_init='unet' (the self-attention's learnable scalar "
                             "sizes the normalised branch); pass attention_init='unet' or branch_norm=False")
        self.encoder = build_encoder(encoder_name, in_channels=in_channels, depth=encoder_depth,
                                     weights=encoder_weights)
        enc_ch = [int(c) for c in self.encoder.out_channels]  # type: ignore[union-attr]  # input, stride 2, 4, ..., 2**depth
        self.stride = 2**encoder_depth
        bottleneck = enc_ch[-1]
        if bottleneck % num_heads:
            raise ValueError(f"the encoder's deepest map has {bottleneck} channels, not divisible by "
                             f"num_heads={num_heads}")
        self.mhsa = SpatialSelfAttention2d(bottleneck, num_heads, positional=True, dropout=dropout,
                                           backend=backend, zero_init=unet_init, branch_norm=branch_norm)
        if gate_stride is not None and (gate_stride < 1 or gate_stride & (gate_stride - 1)):
            raise ValueError(f"gate_stride must be a power of two (or None for full resolution), got {gate_stride}")
        skip_ch = enc_ch[1:-1][::-1]  # deepest skip first; the last stage has no skip
        n_gated = len(skip_ch) if gated_skips is None else gated_skips
        gates: list[nn.Module] = []
        blocks = []
        prev = bottleneck
        for i, out_ch in enumerate(decoder_channels):
            s = skip_ch[i] if i < len(skip_ch) else 0
            if s and i < n_gated:
                y_stride = self.stride // 2**i  # the decoder map that gates skip i
                pool = max(1, (gate_stride or 1) // y_stride)
                gates.append(CrossAttentionGate2d(s, prev, gate_heads, pool=pool, backend=backend,
                                                  open_init=OPEN_GATE_LOGIT if unet_init else None))
            else:
                gates.append(nn.Identity())
            blocks.append(ConvBlock(prev + s, out_ch))
            prev = out_ch
        self.gates = nn.ModuleList(gates)
        self.blocks = nn.ModuleList(blocks)
        self.head = SegmentationHead(prev, num_classes)
        self.num_classes = num_classes
        if decoder_init == "smp":
            smp_decoder_init(self.blocks, self.head)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, K, H, W)`` for images ``(B, C, H, W)``."""
        check_input_size(x, self.stride, "UTransformer")
        feats = self.encoder(x)
        skips = feats[1:-1][::-1]
        y = self.mhsa(feats[-1])
        for i, (gate, block) in enumerate(zip(self.gates, self.blocks, strict=True)):
            if i < len(skips):
                skip = skips[i]
                gated = skip if isinstance(gate, nn.Identity) else gate(skip, y)
                y = F.interpolate(y, size=skip.shape[-2:], mode="nearest")
                y = sequential_concat(block, [y, gated])
            else:
                y = block(F.interpolate(y, scale_factor=2.0, mode="nearest"))
        return self.head(y, x.shape[-2:])
