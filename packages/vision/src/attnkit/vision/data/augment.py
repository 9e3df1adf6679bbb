"""Augmentations on tensors: flips, 90° rotations, affine, elastic, colour jitter (for H&E)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision import tv_tensors
from torchvision.transforms import v2

__all__ = ["SegmentationAugment"]


class SegmentationAugment(nn.Module):
    """Random joint augmentation of an image ``(C, H, W)`` in ``[0, 1]`` and its mask ``(H, W)``.

    Geometric transforms move image and mask together (masks with nearest interpolation); colour jitter
    touches the image only.

    Args:
        flip: random horizontal and vertical flips.
        rotate90: random multiples of 90°.
        degrees: random rotation in ``[-degrees, degrees]`` (0 disables the affine transform).
        scale: random zoom range of the affine transform.
        elastic_alpha: strength of the elastic deformation (0 disables it).
        brightness: colour jitter strength (H&E stain variation); 0 disables.
        contrast: colour jitter strength.
        saturation: colour jitter strength (RGB only).
        hue: colour jitter strength (RGB only).

    Shapes:
        ``image (C, H, W)``, ``mask (H, W)`` -> same shapes.

    """

    def __init__(self, *, flip: bool = True, rotate90: bool = True, degrees: float = 0.0,
                 scale: tuple[float, float] = (1.0, 1.0), elastic_alpha: float = 0.0, brightness: float = 0.0,
                 contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0) -> None:
        super().__init__()
        self.flip, self.rotate90 = flip, rotate90
        geo: list[nn.Module] = []
        if degrees or scale != (1.0, 1.0):
            geo.append(v2.RandomAffine(degrees=degrees, scale=scale))
        if elastic_alpha:
            geo.append(v2.ElasticTransform(alpha=elastic_alpha))
        self.geometric = v2.Compose(geo) if geo else None
        self.colour_rgb = (v2.ColorJitter(brightness, contrast, saturation, hue)
                           if any((brightness, contrast, saturation, hue)) else None)
        self.colour_grey = v2.ColorJitter(brightness, contrast) if any((brightness, contrast)) else None

    def forward(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Augmented ``(image, mask)``."""
        if self.flip:
            if torch.rand(()) < 0.5:
                image, mask = image.flip(-1), mask.flip(-1)
            if torch.rand(()) < 0.5:
                image, mask = image.flip(-2), mask.flip(-2)
        if self.rotate90:
            k = int(torch.randint(4, ()))
            if k:
                image, mask = image.rot90(k, (-2, -1)), mask.rot90(k, (-2, -1))
        if self.geometric is not None:
            img_t, mask_t = self.geometric(tv_tensors.Image(image), tv_tensors.Mask(mask))
            image, mask = img_t.as_subclass(Tensor), mask_t.as_subclass(Tensor)
        jitter = self.colour_rgb if image.shape[0] == 3 else self.colour_grey
        if jitter is not None:
            image = jitter(image).clamp(0, 1)
        return image.contiguous(), mask.contiguous()
