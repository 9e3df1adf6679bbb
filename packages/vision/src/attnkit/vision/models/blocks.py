"""Small convolutional building blocks shared by the U-Net style models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvBlock", "SegmentationHead"]


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
