"""Readers for image/mask files: PNG, JPEG, BMP, GIF, TIFF (also LZW/deflate), NIfTI (needs nibabel).

Images pair with their masks (and optional field-of-view masks) by file-name pattern or by a CSV list.
Every error names the offending file and says what to do.
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from attnkit.core.errors import DataFormatError, DataNotFoundError

__all__ = [
    "IGNORE_INDEX",
    "IMAGE_SUFFIXES",
    "MASK_DTYPE",
    "ImageFormatError",
    "Intensity",
    "SegmentationPair",
    "list_images",
    "load_pairs",
    "map_mask_values",
    "pair_files",
    "read_image",
    "read_pair_list",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".nii", ".nii.gz")
IGNORE_INDEX = -1
"""Mask value of pixels that count for nothing (outside the field of view, or ``ignore_value``)."""
MASK_DTYPE = np.int16
"""dtype of the class-index masks held in memory (``SegmentationPair.mask``): 2 bytes a pixel where int64 took 8
(PH2's 200 masks: 175 MB instead of 700 MB); the torch datasets hand out int64, what losses take."""

Intensity = Literal["percentile", "dtype"]
DEFAULT_PATTERN = "{stem}.*"


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


def _read_nifti(p: Path) -> list[np.ndarray]:
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


def _read_pil(p: Path, kind: Literal["image", "mask"]) -> np.ndarray:
    from PIL import Image

    with Image.open(p) as im:
        if im.mode == "P":
            pal = np.asarray(im.getpalette() or [], dtype=np.int64).reshape(-1, 3)
            grey = bool(len(pal)) and bool((pal == pal[:, :1]).all())
            if grey:  # greyscale palette (GIF masks): the grey values a viewer shows
                return np.asarray(im.convert("L"))
            # colour palette: a mask keeps its indices (class ids, as in PASCAL VOC); an image becomes RGB
            return np.asarray(im) if kind == "mask" else np.asarray(im.convert("RGB"))
        if im.mode in ("LA", "1"):
            return np.asarray(im.convert("L"))
        if im.mode in ("RGBA", "CMYK", "YCbCr", "LAB", "HSV", "PA", "RGBX", "RGBa", "La"):
            return np.asarray(im.convert("RGB"))  # alpha dropped
        arr = np.asarray(im)
        if im.mode == "I" and arr.size and arr.min() >= 0 and arr.max() <= 65535:
            arr = arr.astype(np.uint16)  # 16-bit PNGs some Pillow versions open as 32-bit "I"
        return arr


def _read_tiff(p: Path, kind: Literal["image", "mask"]) -> np.ndarray:
    import tifffile

    try:
        return np.asarray(tifffile.imread(str(p)))
    except Exception as tiff_err:  # compressed with a codec tifffile lacks (LZW needs imagecodecs): try PIL
        try:
            return _read_pil(p, kind)
        except Exception as pil_err:
            if "imagecodecs" in str(tiff_err):
                raise ImageFormatError(
                    f"cannot read {p}: tifffile says {tiff_err} and PIL cannot decode it either "
                    f"({type(pil_err).__name__}: {pil_err}); install the codecs: pip install imagecodecs"
                ) from tiff_err
            raise ImageFormatError(
                f"cannot read {p}: tifffile: {type(tiff_err).__name__}: {tiff_err}; PIL: "
                f"{type(pil_err).__name__}: {pil_err}. Is it a valid TIFF file?"
            ) from tiff_err


def read_image(path: str | Path, kind: Literal["image", "mask"] = "image") -> list[np.ndarray]:
    """Read an image file as arrays ``(H, W)`` or ``(H, W, C)`` in the file's own dtype.

    2D formats give one array; a NIfTI volume ``(X, Y, Z)`` gives its ``Z`` slices ``[:, :, z]``.
    Conversions: RGBA/LA lose alpha; TIFFs stored channels-first become channels-last; palette files with a
    grey palette (typical GIF masks) give their grey values; colour-palette files give RGB for
    ``kind="image"`` and the palette indices (class ids) for ``kind="mask"``. TIFFs go through tifffile and,
    where it cannot decode them (LZW without ``imagecodecs``), through PIL.

    Args:
        path: the file.
        kind: ``"image"`` or ``"mask"`` (only palette files differ, see above).

    Raises:
        ImageFormatError: the file cannot be decoded (names the file and the fix).

    """
    p = Path(path)
    try:
        if _is_nifti(p):
            return _read_nifti(p)
        arr = _read_tiff(p, kind) if p.suffix.lower() in (".tif", ".tiff") else _read_pil(p, kind)
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
                    ignore_value: int | None = None) -> np.ndarray:
    """Turn raw mask values into class indices ``0..K-1`` (:data:`MASK_DTYPE` ``(H, W)``, at most 32,767 classes).

    With ``mask_values`` the class of raw value ``mask_values[i]`` is ``i``. Without, masks already holding
    ``0..K-1`` are kept and binary masks of ``{0, 255}`` become ``{0, 1}``. Pixels equal to ``ignore_value``
    become :data:`IGNORE_INDEX`.

    Raises:
        ImageFormatError: values outside the class set (names the file, the values and the fix).

    """
    if num_classes > np.iinfo(MASK_DTYPE).max:
        raise ValueError(f"num_classes={num_classes}: masks hold at most {np.iinfo(MASK_DTYPE).max} classes")
    if mask.ndim == 3:
        if not (mask == mask[..., :1]).all():
            raise ImageFormatError(f"mask {path} is a colour image with differing channels; save masks as "
                                   "single-channel class maps (or greyscale)")
        mask = mask[..., 0]
    ignored = mask == ignore_value if ignore_value is not None else None
    values = np.unique(mask if ignored is None else mask[~ignored])
    if mask_values is not None:
        lut = {int(v): i for i, v in enumerate(mask_values)}
        bad = [int(v) for v in values if int(v) not in lut]
        if bad:
            raise ImageFormatError(f"mask {path} has values {bad[:10]} outside "
                                   f"mask_values={list(mask_values)}; add them to mask_values or fix the "
                                   "mask")
        out = np.zeros(mask.shape, dtype=MASK_DTYPE)
        for v, i in lut.items():
            out[mask == v] = i
    elif not len(values) or (values.min() >= 0 and values.max() < num_classes):
        out = mask.astype(MASK_DTYPE)
    elif num_classes == 2 and set(values.tolist()) <= {0, 255}:
        out = (mask == 255).astype(MASK_DTYPE)
    else:
        raise ImageFormatError(
            f"mask {path} has values {values[:10].tolist()}{'...' if len(values) > 10 else ''}, outside the "
            f"{num_classes} classes 0..{num_classes - 1}; set num_classes, or mask_values=[raw value of class "
            "0, class 1, ...]" + ("" if ignore_value is not None else ", or ignore_value for a 'don't care' "
                                  "value")
        )
    if ignored is not None:
        out[ignored] = IGNORE_INDEX
    return out


@dataclass
class SegmentationPair:
    """One image and its mask.

    Attributes:
        image: ``uint8 (C, H, W)``.
        mask: :data:`MASK_DTYPE` (int16) ``(H, W)`` class indices (:data:`IGNORE_INDEX` outside the field of
            view), or ``None`` for unlabelled images.
        name: file stem (with ``#z`` slice index for volumes).
        path: the image file.

    """

    image: np.ndarray
    mask: np.ndarray | None
    name: str
    path: Path


def _to_uint8(arr: np.ndarray, path: Path, intensity: Intensity = "percentile") -> np.ndarray:
    """``uint8`` image, see :func:`load_pairs` for the two ``intensity`` rules."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if intensity == "percentile":
        a = arr.astype(np.float64)
        lo, hi = np.percentile(a, 0.5), np.percentile(a, 99.5)
        return (np.clip((a - lo) / max(hi - lo, 1e-8), 0, 1) * 255).astype(np.uint8)
    if intensity != "dtype":
        raise ValueError(f"intensity must be 'percentile' or 'dtype', got {intensity!r}")
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        a = (arr.astype(np.float64) - info.min) / (float(info.max) - info.min)
    else:
        a = arr.astype(np.float64)
        if a.size and (np.nanmin(a) < 0 or np.nanmax(a) > 1):
            raise ImageFormatError(f"image {path} is floating point with values in [{np.nanmin(a):.4g}, "
                                   f"{np.nanmax(a):.4g}], not [0, 1]; intensity='dtype' needs [0, 1]: use "
                                   "intensity='percentile'")
    return np.rint(np.nan_to_num(a) * 255).astype(np.uint8)


def _to_chw(arr: np.ndarray, path: Path, intensity: Intensity = "percentile") -> np.ndarray:
    arr = _to_uint8(arr, path, intensity)
    # always a fresh, writable array (a decoder's buffer can be read-only, and tensors share the memory)
    return np.array(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1), order="C")


# ---------------------------------------------------------------------------------------------- pairing

_FIELDS = ("stem", "id")


def _check_pattern(name: str, pattern: str) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None]
    except ValueError as e:
        raise ValueError(f"{name}={pattern!r} is not a valid pattern: {e}") from e
    bad = [f for f in fields if f not in _FIELDS]
    if bad:
        raise ValueError(f"{name}={pattern!r} uses {{{bad[0]}}}; only {{stem}} (the image's file name without "
                         "suffix) and {id} (the part of the stem id_regex matches) can be used")


def _image_id(stem: str, id_regex: str | None, path: Path) -> str:
    if id_regex is None:
        return stem
    m = re.search(id_regex, stem)
    if m is None:
        raise ImageFormatError(f"image {path}: id_regex={id_regex!r} does not match its stem {stem!r}; "
                               "fix id_regex or move the file out of the image folder")
    return m.group(1) if m.re.groups else m.group(0)


class _Folder:
    """The image files of one folder, looked up by a filled-in pattern."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files = list_images(folder)
        self.by_name = {p.name: p for p in self.files}
        self.by_stem: dict[str, list[Path]] = {}
        for p in self.files:
            self.by_stem.setdefault(_stem(p), []).append(p)

    def find(self, pattern: str, stem: str, image_id: str) -> tuple[str, list[Path]]:
        """The name ``pattern`` gives for this image, and the files that match it."""
        if pattern.endswith(".*"):  # any image suffix
            prefix = pattern[:-2].format(stem=stem, id=image_id)
            return prefix + ".*", list(self.by_stem.get(prefix, []))
        if any(c in pattern for c in "*?["):  # a glob: match the literal parts of stem and id exactly
            g = pattern.format(stem=glob.escape(stem), id=glob.escape(image_id))
            return g, [p for p in self.files if fnmatch.fnmatchcase(p.name, g)]
        name = pattern.format(stem=stem, id=image_id)
        return name, [self.by_name[name]] if name in self.by_name else []


def pair_files(
    images: Sequence[Path],
    mask_dir: str | Path | None,
    *,
    mask_pattern: str = DEFAULT_PATTERN,
    fov_dir: str | Path | None = None,
    fov_pattern: str = DEFAULT_PATTERN,
    id_regex: str | None = None,
) -> list[tuple[Path, Path | None, Path | None]]:
    r"""Find each image's mask (and field-of-view mask) by file-name pattern.

    A pattern is a Python format string with ``{stem}`` (the image's file name without suffix) and ``{id}``
    (the first group of ``id_regex`` searched in the stem, or its whole match; the stem when ``id_regex`` is
    ``None``). A pattern ending in ``.*`` accepts any image suffix; ``*``, ``?`` and ``[...]`` elsewhere make
    it a glob. DRIVE (``images/21_training.tif``, ``1st_manual/21_manual1.gif``,
    ``mask/21_training_mask.gif``): ``id_regex=r"^(\d+)_"``, ``mask_pattern="{id}_manual1.gif"``,
    ``fov_pattern="{stem}_mask.gif"``.

    Args:
        images: image files.
        mask_dir: folder of masks (``None``: unlabelled).
        mask_pattern: mask file name for an image (default ``"{stem}.*"``: same stem, any suffix).
        fov_dir: folder of field-of-view masks (``None``: every pixel counts).
        fov_pattern: field-of-view file name for an image.
        id_regex: regular expression that picks ``{id}`` out of the image stem.

    Returns:
        ``(image, mask or None, fov or None)`` per image, in the order of ``images``.

    Raises:
        ImageFormatError: an image without a mask or FOV file (names the image, the pattern and the folder),
            several files matching one image, or (default pattern only) masks without an image.
        ValueError: a pattern with fields other than ``{stem}`` and ``{id}``.

    """
    _check_pattern("mask_pattern", mask_pattern)
    _check_pattern("fov_pattern", fov_pattern)
    if id_regex is not None:
        try:
            re.compile(id_regex)
        except re.error as e:
            raise ValueError(f"id_regex={id_regex!r} is not a valid regular expression: {e}") from e
    folders = {"mask": _Folder(Path(mask_dir)) if mask_dir is not None else None,
               "field-of-view mask": _Folder(Path(fov_dir)) if fov_dir is not None else None}
    patterns = {"mask": (mask_pattern, "mask_pattern"), "field-of-view mask": (fov_pattern, "fov_pattern")}
    out: list[tuple[Path, Path | None, Path | None]] = []
    used: set[Path] = set()
    for ip in images:
        stem = _stem(ip)
        image_id = _image_id(stem, id_regex, ip)
        found: dict[str, Path | None] = {}
        for what, folder in folders.items():
            if folder is None:
                found[what] = None
                continue
            pattern, option = patterns[what]
            name, hits = folder.find(pattern, stem, image_id)
            if not hits:
                fields = f"stem={stem!r}" + (f", id={image_id!r}" if id_regex is not None else "")
                raise ImageFormatError(
                    f"image {ip} has no {what} named {name} in {folder.folder} ({option}={pattern!r}, {fields}); "
                    f"set {option}" + ("" if id_regex is not None else " (and id_regex)") + " to how your "
                    "files are named, or list the pairs in a CSV file (columns image,mask[,fov])"
                )
            if len(hits) > 1:
                raise ImageFormatError(f"image {ip}: several {what}s match {name} in {folder.folder}: "
                                       f"{[h.name for h in hits]}; make {option} more specific")
            found[what] = hits[0]
            used.add(hits[0])
        out.append((ip, found["mask"], found["field-of-view mask"]))
    masks = folders["mask"]
    if masks is not None and mask_pattern == DEFAULT_PATTERN and id_regex is None:
        extra = sorted(_stem(p) for p in masks.files if p not in used)
        if extra:
            where = images[0].parent if images else "the image folder"
            raise ImageFormatError(f"masks without an image in {where}: {extra[:5]} (from {masks.folder})")
    return out


def read_pair_list(csv_path: str | Path) -> list[tuple[Path, Path | None, Path | None]]:
    """Read ``(image, mask, fov)`` file triples from a CSV list.

    The CSV has a header with an ``image`` column and optional ``mask`` and ``fov`` columns (other columns
    are ignored); relative paths start from the CSV's folder. Empty ``mask``/``fov`` cells mean none.

    Raises:
        FileNotFoundError: the CSV, or a file it lists, does not exist (names the row).
        ImageFormatError: no ``image`` column, or no rows.

    """
    path = Path(csv_path)
    if not path.is_file():
        raise FileNotFoundError(f"pair list {path} does not exist")
    base = path.parent
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        if "image" not in cols:
            raise ImageFormatError(f"pair list {path} has columns {cols}; it needs a header with an 'image' "
                                   "column (and 'mask', optionally 'fov'), paths relative to the CSV's folder")
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if not rows:
        raise ImageFormatError(f"pair list {path} has no rows")
    out: list[tuple[Path, Path | None, Path | None]] = []
    for line, row in enumerate(rows, start=2):
        files: list[Path | None] = []
        for col in ("image", "mask", "fov"):
            cell = row.get(col, "")
            if not cell:
                if col == "image":
                    raise ImageFormatError(f"pair list {path} line {line}: empty 'image' cell")
                files.append(None)
                continue
            p = Path(cell) if Path(cell).is_absolute() else base / cell
            if not p.is_file():
                raise FileNotFoundError(f"pair list {path} line {line}: {col} file {p} does not exist")
            files.append(p)
        out.append((files[0], files[1], files[2]))  # type: ignore[arg-type]
    return out


def _fov_bool(arr: np.ndarray) -> np.ndarray:
    return (arr != 0).any(-1) if arr.ndim == 3 else arr != 0


def _size_error(ip: Path, hw: tuple[int, ...], what: str, other: Path, ohw: tuple[int, ...]) -> ImageFormatError:
    return ImageFormatError(f"image {ip} is {hw[0]}x{hw[1]} but its {what} {other} is {ohw[0]}x{ohw[1]}; "
                            "they must have the same size")


def load_files(
    triples: Sequence[tuple[Path, Path | None, Path | None]],
    *,
    num_classes: int = 2,
    mask_values: Sequence[int] | None = None,
    in_channels: int | None = None,
    ignore_value: int | None = None,
    intensity: Intensity = "percentile",
) -> list[SegmentationPair]:
    """Read ``(image, mask, fov)`` triples (see :func:`load_pairs` for the conversions)."""
    pairs: list[SegmentationPair] = []
    first: tuple[int, Path] | None = None
    for ip, mp, fp in triples:
        if fp is not None and mp is None:
            raise ImageFormatError(f"image {ip} has a field-of-view mask {fp} but no mask; the field of view "
                                   "only restricts scoring against a mask")
        slices = read_image(ip)
        mslices: list[np.ndarray | None] = (list(read_image(mp, "mask")) if mp is not None
                                            else [None] * len(slices))
        fslices: list[np.ndarray | None] = (list(read_image(fp, "mask")) if fp is not None
                                            else [None] * len(slices))
        for what, other, got in (("mask", mp, mslices), ("field-of-view mask", fp, fslices)):
            if len(got) != len(slices):
                raise ImageFormatError(f"image {ip} has {len(slices)} slices but its {what} {other} has "
                                       f"{len(got)}")
        stem = _stem(ip)
        for z, (arr, marr, farr) in enumerate(zip(slices, mslices, fslices, strict=True)):
            chw = _to_chw(arr, ip, intensity)
            c = chw.shape[0]
            if in_channels == 3 and c == 1:
                chw = np.repeat(chw, 3, 0)  # greyscale for an RGB model: replicate
                c = 3
            if in_channels is not None and c != in_channels:
                raise ImageFormatError(f"image {ip} has {c} channel(s) but in_channels={in_channels}; "
                                       "convert it or set in_channels")
            if first is None:
                first = (c, ip)
            elif c != first[0]:
                kind = {1: "greyscale", 3: "RGB"}
                this, other_kind = kind.get(c, f"{c}-channel"), kind.get(first[0], f"{first[0]}-channel")
                raise ImageFormatError(
                    f"mixed greyscale and RGB images: {ip} is {this} but {first[1]} is {other_kind}; "
                    "convert them to one kind, or set in_channels=3 (greyscale is then replicated)"
                )
            hw = chw.shape[1:]
            mask = None
            if marr is not None:
                assert mp is not None
                if marr.shape[:2] != hw:
                    raise _size_error(ip, hw, "mask", mp, marr.shape[:2])
                mask = map_mask_values(marr, num_classes, mask_values, mp, ignore_value)
                if farr is not None:
                    assert fp is not None
                    if farr.shape[:2] != hw:
                        raise _size_error(ip, hw, "field-of-view mask", fp, farr.shape[:2])
                    mask[~_fov_bool(farr)] = IGNORE_INDEX
            name = stem if len(slices) == 1 else f"{stem}#{z}"
            pairs.append(SegmentationPair(chw, mask, name, ip))
    return pairs


def load_pairs(
    image_dir: str | Path,
    mask_dir: str | Path | None,
    *,
    num_classes: int = 2,
    mask_values: Sequence[int] | None = None,
    in_channels: int | None = None,
    mask_pattern: str = DEFAULT_PATTERN,
    fov_dir: str | Path | None = None,
    fov_pattern: str = DEFAULT_PATTERN,
    id_regex: str | None = None,
    ignore_value: int | None = None,
    intensity: Intensity = "percentile",
) -> list[SegmentationPair]:
    """Load the images of a folder (or a CSV list) with their masks.

    Masks pair by :func:`pair_files` (default: same stem, any suffix; MoNuSeg pairs TIFF images with PNG
    masks). ``image_dir`` may instead be a CSV file (:func:`read_pair_list`); ``mask_dir`` and ``fov_dir``
    must then be ``None``.

    Conversions: images become ``uint8 (C, H, W)``. Non-``uint8`` images (16-bit PNG/TIFF, float TIFF,
    CT/MR NIfTI) are quantised to 8 bits by ``intensity``: ``"percentile"`` (default) maps each image's
    0.5 / 99.5 percentiles to 0 / 255 (clipped); ``"dtype"`` divides by the dtype's range (``uint16``:
    ``/ 65535``; floats must lie in ``[0, 1]``), keeping intensities comparable across images. RGBA loses
    alpha; greyscale images are replicated to 3 channels when ``in_channels=3``. Masks become class indices
    (:func:`map_mask_values`); pixels where the field-of-view mask is 0, or equal to ``ignore_value``, become
    :data:`IGNORE_INDEX` and count in no loss or metric.

    Args:
        image_dir: folder of images, or a CSV list of ``image,mask[,fov]``.
        mask_dir: folder of masks, or ``None`` for unlabelled images.
        num_classes: classes ``K`` (with background 0).
        mask_values: raw mask value of each class (see :func:`map_mask_values`).
        in_channels: required channels (1 or 3); ``None`` requires all images to agree.
        mask_pattern: mask file name per image (see :func:`pair_files`).
        fov_dir: folder of field-of-view masks (nonzero = scored), or ``None``.
        fov_pattern: field-of-view file name per image.
        id_regex: picks ``{id}`` out of the image stem for the patterns.
        ignore_value: raw mask value meaning "don't care" (e.g. 255 in multi-class masks).
        intensity: ``"percentile"`` or ``"dtype"`` scaling of non-``uint8`` images.

    Raises:
        ImageFormatError: empty folder, missing mask, image/mask size mismatch, mask values outside the
            class set, mixed greyscale and RGB images, unreadable file -- each naming the file.

    """
    src = Path(image_dir)
    if src.suffix.lower() == ".csv":
        if mask_dir is not None or fov_dir is not None:
            raise ValueError(f"{src} is a CSV list of pairs; give masks and FOV files in its 'mask' and 'fov' "
                             "columns, not as folders")
        triples = read_pair_list(src)
    else:
        triples = pair_files(list_images(src), mask_dir, mask_pattern=mask_pattern, fov_dir=fov_dir,
                             fov_pattern=fov_pattern, id_regex=id_regex)
    return load_files(triples, num_classes=num_classes, mask_values=mask_values, in_channels=in_channels,
                      ignore_value=ignore_value, intensity=intensity)
