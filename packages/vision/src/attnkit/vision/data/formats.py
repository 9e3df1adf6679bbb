"""Readers for image/mask folders: PNG, JPEG, TIFF, BMP and NIfTI (sliced to 2D; needs nibabel).

Every error names the offending file and says what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnkit.core.errors import DataFormatError, DataNotFoundError

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageFormatError",
    "SegmentationPair",
    "list_images",
    "load_pairs",
    "map_mask_values",
    "read_image",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".nii", ".nii.gz")


class ImageFormatError(DataFormatError):
    """An image or mask file cannot be used (unreadable, wrong size, unknown mask values, ...)."""


def _stem(path: Path) -> str:
    name = path.name
    for suf in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return path.stem


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def list_images(folder: str | Path) -> list[Path]:
    """Image files in ``folder`` (by suffix, sorted by name).

    Raises:
        FileNotFoundError: the folder does not exist.
        ImageFormatError: it holds no image files.

    """
    d = Path(folder)
    if not d.is_dir():
        raise DataNotFoundError(f"image folder {d} does not exist; check the dataset root / folder settings")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise ImageFormatError(f"{d} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image(path: str | Path) -> list[np.ndarray]:
    """Read an image file as ``uint8``/integer arrays ``(H, W)`` or ``(H, W, C)``.

    2D formats give one array; a NIfTI volume ``(X, Y, Z)`` gives its ``Z`` axial slices.

    Raises:
        ImageFormatError: the file cannot be decoded (names the file).

    """
    p = Path(path)
    try:
        if _is_nifti(p):
            try:
                import nibabel
            except ImportError as e:
                raise ImageFormatError(
                    f"{p} is NIfTI; install the optional reader: pip install 'attnkit-vision[nifti]'"
                ) from e
            vol = np.asarray(nibabel.load(str(p)).dataobj)  # type: ignore[attr-defined]
            if vol.ndim == 2:
                return [vol]
            if vol.ndim != 3:
                raise ImageFormatError(f"{p}: expected a 2D or 3D NIfTI volume, got shape {vol.shape}")
            return [vol[:, :, z] for z in range(vol.shape[2])]
        if p.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(str(p))
        else:
            from PIL import Image

            with Image.open(p) as im:
                if im.mode == "P":
                    arr = np.asarray(im)  # palette masks: keep the indices
                elif im.mode in ("RGBA", "LA", "I;16", "I", "F", "L", "RGB", "1"):
                    arr = np.asarray(im.convert("RGB") if im.mode == "RGBA" else
                                     im.convert("L") if im.mode in ("LA", "1") else im)
                else:
                    arr = np.asarray(im.convert("RGB"))
    except ImageFormatError:
        raise
    except Exception as e:
        raise ImageFormatError(f"cannot read {p}: {type(e).__name__}: {e}. Is it a valid image file?") from e
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # channels-first TIFF
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise ImageFormatError(f"{p}: expected a 2D image (H, W) or (H, W, C), got shape {arr.shape}")
    return [arr]


def map_mask_values(mask: np.ndarray, num_classes: int, mask_values: Sequence[int] | None, path: Path,
                    ) -> np.ndarray:
    """Turn raw mask values into class indices ``0..K-1`` (``int64 (H, W)``).

    With ``mask_values`` the class of raw value ``mask_values[i]`` is ``i``. Without, masks already holding
    ``0..K-1`` are kept and binary masks of ``{0, 255}`` become ``{0, 1}``.

    Raises:
        ImageFormatError: values outside the class set (names the file, the values and the fix).

    """
    if mask.ndim == 3:
        if not (mask == mask[..., :1]).all():
            raise ImageFormatError(f"mask {path} is a colour image with differing channels; save masks as "
                                   "single-channel class maps (or greyscale)")
        mask = mask[..., 0]
    values = np.unique(mask)
    if mask_values is not None:
        lut = {int(v): i for i, v in enumerate(mask_values)}
        bad = [int(v) for v in values if int(v) not in lut]
        if bad:
            raise ImageFormatError(f"mask {path} has values {bad[:10]} outside "
                                   f"mask_values={list(mask_values)}; add them to mask_values or fix the "
                                   "mask")
        out = np.zeros(mask.shape, dtype=np.int64)
        for v, i in lut.items():
            out[mask == v] = i
        return out
    if values.min() >= 0 and values.max() < num_classes:
        return mask.astype(np.int64)
    if num_classes == 2 and set(values.tolist()) <= {0, 255}:
        return (mask == 255).astype(np.int64)
    raise ImageFormatError(
        f"mask {path} has values {values[:10].tolist()}{'...' if len(values) > 10 else ''}, outside the "
        f"{num_classes} classes 0..{num_classes - 1}; set num_classes, or mask_values=[raw value of class 0, "
        "class 1, ...]"
    )


@dataclass
class SegmentationPair:
    """One image and its mask.

    Attributes:
        image: ``uint8 (C, H, W)``.
        mask: ``int64 (H, W)`` class indices, or ``None`` for unlabelled images.
        name: file stem (with ``#z`` slice index for volumes).
        path: the image file.

    """

    image: np.ndarray
    mask: np.ndarray | None
    name: str
    path: Path


def _to_chw(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        lo, hi = np.percentile(a, 0.5), np.percentile(a, 99.5)
        arr = (np.clip((a - lo) / max(hi - lo, 1e-8), 0, 1) * 255).astype(np.uint8)
    # always a fresh, writable array (a decoder's buffer can be read-only, and tensors share the memory)
    return np.array(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1), order="C")


def load_pairs(
    image_dir: str | Path,
    mask_dir: str | Path | None,
    *,
    num_classes: int = 2,
    mask_values: Sequence[int] | None = None,
    in_channels: int | None = None,
) -> list[SegmentationPair]:
    """Load all images of ``image_dir`` and the masks with the same stem in ``mask_dir``.

    Masks may have any supported suffix (MoNuSeg pairs TIFF images with PNG masks). Non-uint8 images
    (16-bit TIFF, CT/MR NIfTI) are scaled to uint8 by their 0.5 / 99.5 percentiles.

    Args:
        image_dir: folder of images.
        mask_dir: folder of masks, or ``None`` for unlabelled images.
        num_classes: classes ``K`` (with background 0).
        mask_values: raw mask value of each class (see :func:`map_mask_values`).
        in_channels: required channels (1 or 3); ``None`` requires all images to agree.

    Raises:
        ImageFormatError: empty folder, missing mask, image/mask size mismatch, mask values outside the
            class set, mixed greyscale and RGB images, unreadable file -- each naming the file.

    """
    images = list_images(image_dir)
    masks: dict[str, Path] = {}
    if mask_dir is not None:
        masks = {_stem(p): p for p in list_images(mask_dir)}
    pairs: list[SegmentationPair] = []
    first: tuple[int, Path] | None = None
    for ip in images:
        stem = _stem(ip)
        mp = masks.get(stem)
        if mask_dir is not None and mp is None:
            raise ImageFormatError(f"image {ip} has no mask named {stem}.* in {mask_dir}")
        slices = read_image(ip)
        mslices = read_image(mp) if mp is not None else [None] * len(slices)
        if len(mslices) != len(slices):
            raise ImageFormatError(f"image {ip} has {len(slices)} slices but its mask {mp} has "
                                   f"{len(mslices)}")
        for z, (arr, marr) in enumerate(zip(slices, mslices, strict=True)):
            chw = _to_chw(arr, ip)
            c = chw.shape[0]
            if in_channels is not None and c != in_channels:
                raise ImageFormatError(f"image {ip} has {c} channel(s) but in_channels={in_channels}; "
                                       "convert it or set in_channels")
            if first is None:
                first = (c, ip)
            elif c != first[0]:
                kind = {1: "greyscale", 3: "RGB"}
                this, other = kind.get(c, f"{c}-channel"), kind.get(first[0], f"{first[0]}-channel")
                raise ImageFormatError(
                    f"mixed greyscale and RGB images: {ip} is {this} but {first[1]} is {other}; "
                    "convert them to one kind"
                )
            mask = None
            if marr is not None:
                assert mp is not None
                if marr.shape[:2] != chw.shape[1:]:
                    raise ImageFormatError(f"image {ip} is {chw.shape[1]}x{chw.shape[2]} but its mask {mp} "
                                           f"is {marr.shape[0]}x{marr.shape[1]}; they must have the same "
                                           "size")
                mask = map_mask_values(marr, num_classes, mask_values, mp)
            name = stem if len(slices) == 1 else f"{stem}#{z}"
            pairs.append(SegmentationPair(chw, mask, name, ip))
    if mask_dir is not None:
        extra = sorted(set(masks) - {_stem(p) for p in images})
        if extra:
            raise ImageFormatError(f"masks without an image in {image_dir}: {extra[:5]} (from {mask_dir})")
    return pairs
