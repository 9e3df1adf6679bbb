"""Write a predicted segmentation to disk: the hard mask and the class probabilities."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

__all__ = ["ProbabilityFormat", "write_segmentation"]

ProbabilityFormat = Literal["png", "npy", "tif", "none"]


def write_segmentation(
    path_stem: str | Path,
    probs: Tensor | np.ndarray,
    *,
    prob_format: ProbabilityFormat = "png",
    valid: np.ndarray | None = None,
) -> dict[str, str]:
    """Write ``<path_stem>_mask.png`` and the probability map(s) of one image.

    The mask is the arg-max class per pixel: ``0/255`` for binary tasks, class ids ``0..K-1`` otherwise
    (8-bit PNG, 16-bit above 256 classes). Probabilities, by ``prob_format``:

    - ``"png"``: 16-bit greyscale PNG, value ``round(p * 65535)``; binary tasks write the foreground
      probability to ``<path_stem>_prob.png``, ``K > 2`` one ``<path_stem>_prob_<k>.png`` per foreground class
      ``k = 1..K-1``.
    - ``"npy"``: ``<path_stem>_prob.npy`` float32, ``(H, W)`` foreground probability for binary tasks,
      ``(K, H, W)`` otherwise.
    - ``"tif"``: the same array as float32 TIFF, ``<path_stem>_prob.tif``.
    - ``"none"``: the mask only.

    Args:
        path_stem: output path without suffix (its folder is created).
        probs: ``(K, H, W)`` class probabilities (softmax of the logits), ``K >= 2``.
        prob_format: see above.
        valid: optional ``(H, W)`` boolean field of view; outside it mask and probabilities are written as 0.

    Returns:
        ``{"mask": path, "prob": path}``: no ``"prob"`` for ``"none"``; ``"prob_1"``, ..., ``"prob_<K-1>"``
        instead for multi-class PNG.

    Raises:
        ValueError: ``probs`` is not ``(K, H, W)`` with ``K >= 2``, ``valid`` has another size, or
            ``prob_format`` is unknown.

    """
    from PIL import Image

    p = probs.detach().float().cpu().numpy() if isinstance(probs, Tensor) else np.asarray(probs, np.float32)
    if p.ndim != 3 or p.shape[0] < 2:
        raise ValueError(f"probs must be (K, H, W) class probabilities with K >= 2, got shape {p.shape}")
    if prob_format not in ("png", "npy", "tif", "none"):
        raise ValueError(f"prob_format must be 'png', 'npy', 'tif' or 'none', got {prob_format!r}")
    k = p.shape[0]
    p = p.astype(np.float32, copy=True)
    if valid is not None:
        if valid.shape != p.shape[1:]:
            raise ValueError(f"valid has shape {valid.shape} but the probabilities are {p.shape[1:]}")
        p[:, ~valid.astype(bool)] = 0.0
    labels = torch.from_numpy(p).argmax(0).numpy()
    if valid is not None:
        labels[~valid.astype(bool)] = 0
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    mask_path = stem.parent / f"{stem.name}_mask.png"
    stored = (labels * 255).astype(np.uint8) if k == 2 else labels.astype(np.uint8 if k <= 256 else np.uint16)
    Image.fromarray(stored).save(mask_path)
    out = {"mask": str(mask_path)}
    if prob_format == "none":
        return out
    arr = p[1] if k == 2 else p
    if prob_format == "png":
        maps = {"prob": p[1]} if k == 2 else {f"prob_{c}": p[c] for c in range(1, k)}
        for key, m in maps.items():
            path = stem.parent / f"{stem.name}_{key}.png"
            Image.fromarray(np.rint(np.clip(m, 0.0, 1.0) * 65535).astype(np.uint16)).save(path)
            out[key] = str(path)
    elif prob_format == "npy":
        path = stem.parent / f"{stem.name}_prob.npy"
        np.save(path, arr)
        out["prob"] = str(path)
    else:
        import tifffile

        path = stem.parent / f"{stem.name}_prob.tif"
        tifffile.imwrite(path, arr)
        out["prob"] = str(path)
    return out
