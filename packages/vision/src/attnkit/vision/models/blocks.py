"""Small convolutional building blocks shared by the U-Net style models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvBlock", "SegmentationHead", "segformer_init", "smp_decoder_init"]


def smp_decoder_init(decoder: nn.Module, head: nn.Module) -> None:
    """Initialise ``decoder`` and ``head`` in place as segmentation-models-pytorch initialises its U-Net.

    The rules of smp's ``initialize_decoder`` / ``initialize_head``, which only know 2D layers, extended to
    3D convolutions and batch norms (``TransDAE(spatial_dims=3)``).

    Decoder convolutions (2D or 3D): Kaiming-uniform with the ReLU gain (``fan_in``), zero biases; batch
    norms at weight 1, bias 0. Head convolutions: Xavier-uniform, zero biases. PyTorch's own default for a
    convolution (Kaiming-uniform with ``a = sqrt(5)``) draws weights 2.45x smaller: behind batch norm the
    forward pass is the same, but Adam's per-element steps are then 2.45x larger relative to the weights.
    """
    for m in decoder.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in head.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def segformer_init(module: nn.Module) -> None:
    """Initialise a transformer encoder in place as SegFormer / MiT does (Xie et al. 2021).

    Linear layers: truncated normal with std 0.02 (cut at +-2, absolute, as timm's ``trunc_normal_`` that
    SegFormer calls: in effect ``N(0, 0.02)``), zero biases; layer norms at weight 1, bias 0; convolutions
    (patch embeddings, depth-wise convolutions of the Mix-FFNs): normal with std ``sqrt(2 / fan_out)``,
    ``fan_out = kernel volume * out_channels / groups``, zero biases. Other parameters are left as they are.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.conv._ConvNd):
            fan_out = m.weight[0, 0].numel() * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConvBlock(nn.Sequential):
    """Two ``3x3 conv -> BatchNorm -> ReLU`` layers: ``(B, Cin, H, W) -> (B, Cout, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SegmentationHead(nn.Module):
    """``3x3`` conv to class logits, resized to a target size: ``(B, C, h, w) -> (B, K, H, W)``."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=1)

    def forward(self, x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
        """Logits ``(B, K, *size)``."""
        y = self.conv(x)
        if tuple(y.shape[-2:]) != tuple(size):
            y = F.interpolate(y, size=tuple(size), mode="bilinear", align_corners=False)
        return y
