"""Sliding-window inference with overlap blending, for images of any size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_window", "sliding_window_inference", "window_starts"]


def window_starts(size: int, patch: int, stride: int) -> list[int]:
    """Start offsets covering ``[0, size)`` with windows of ``patch`` every ``stride``.

    The last window ends at ``size``.
    """
    if size <= patch:
        return [0]
    starts = list(range(0, size - patch, stride))
    starts.append(size - patch)
    return starts


def gaussian_window(patch: tuple[int, int], sigma_scale: float = 0.125, *, device: torch.device | None = None,
                    ) -> Tensor:
    """Gaussian importance map ``(h, w)``, max 1, min clamped to 1e-3 (nnU-Net style blending)."""
    axes = []
    for n in patch:
        x = torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2
        axes.append(torch.exp(-0.5 * (x / (sigma_scale * n)) ** 2))
    w = axes[0][:, None] * axes[1][None, :]
    return (w / w.max()).clamp_min(1e-3)


@torch.no_grad()
def sliding_window_inference(
    image: Tensor,
    predict: Callable[[Tensor], Tensor],
    patch_size: int | tuple[int, int],
    *,
    overlap: float = 0.25,
    batch_size: int = 4,
    blend: Literal["gaussian", "constant"] = "gaussian",
) -> Tensor:
    """Predict ``image (B, C, H, W)`` window by window and blend the overlapping logits.

    Images smaller than a window are padded (reflect where possible) and the result cropped back.

    Args:
        image: ``(B, C, H, W)``.
        predict: maps ``(N, C, h, w)`` windows to ``(N, K, h, w)`` logits.
        patch_size: window size ``h`` (and ``w``).
        overlap: fraction of a window shared with its neighbour, in ``[0, 1)``.
        batch_size: windows per call of ``predict``.
        blend: ``"gaussian"`` weights window centres more (fewer seams), ``"constant"`` averages.

    Returns:
        Blended logits ``(B, K, H, W)`` (float32).

    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    ph, pw = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
    b, _, h, w = image.shape
    pad_h, pad_w = max(ph - h, 0), max(pw - w, 0)
    if pad_h or pad_w:
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        image = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)
    H, W = image.shape[-2:]
    ys = window_starts(H, ph, max(1, round(ph * (1 - overlap))))
    xs = window_starts(W, pw, max(1, round(pw * (1 - overlap))))
    weight = (gaussian_window((ph, pw), device=image.device) if blend == "gaussian"
              else torch.ones(ph, pw, device=image.device))
    out: Tensor | None = None
    norm = torch.zeros(1, 1, H, W, device=image.device)
    coords = [(y, x) for y in ys for x in xs]
    for i in range(0, len(coords), batch_size):
        chunk = coords[i : i + batch_size]
        windows = torch.cat([image[:, :, y : y + ph, x : x + pw] for y, x in chunk], 0)
        logits = predict(windows).float()
        if out is None:
            out = torch.zeros(b, logits.shape[1], H, W, device=image.device)
        for j, (y, x) in enumerate(chunk):
            out[:, :, y : y + ph, x : x + pw] += logits[j * b : (j + 1) * b] * weight
            norm[:, :, y : y + ph, x : x + pw] += weight
    assert out is not None
    return (out / norm)[:, :, :h, :w]
