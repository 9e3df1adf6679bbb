"""Tiny on-disk fixture datasets in the real layouts (made per test, never committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

TINY = "tu-mobilenetv3_small_050"  # timm's smallest-ish encoder: fast tests


def blobs(rng: np.random.Generator, h: int, w: int, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image with dark-purple disks on a pink background, and its 0/255 mask."""
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros((h, w), bool)
    for _ in range(n):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(3, max(4, min(h, w) // 6))
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    img = np.where(mask[..., None], [90, 40, 140], [230, 170, 200]).astype(np.float64)
    img += rng.normal(0, 12, img.shape)
    return img.clip(0, 255).astype(np.uint8), mask.astype(np.uint8) * 255


def make_monuseg(root: Path, size: tuple[int, int] = (72, 80), seed: int = 0) -> Path:
    """``root/monuseg/{Train,Val,Test}_Folder/{img,labelcol}``; test images are TIFF as in the real data."""
    rng = np.random.default_rng(seed)
    base = root / "monuseg"
    for split, n in (("Train_Folder", 3), ("Val_Folder", 1), ("Test_Folder", 2)):
        (base / split / "img").mkdir(parents=True)
        (base / split / "labelcol").mkdir(parents=True)
        for i in range(n):
            img, mask = blobs(rng, *size)
            name = f"TCGA-{split[:2]}-{i}"
            if split == "Test_Folder":
                tifffile.imwrite(base / split / "img" / f"{name}.tif", img)
            else:
                Image.fromarray(img).save(base / split / "img" / f"{name}.png")
            Image.fromarray(mask).save(base / split / "labelcol" / f"{name}.png")
    return base


def make_isbi(root: Path, n: int = 10, size: int = 64, seed: int = 0) -> Path:
    """``root/isbi2012-em/{image,label}/N.png``, greyscale, label 255 = cell, 0 = membrane."""
    rng = np.random.default_rng(seed)
    base = root / "isbi2012-em"
    (base / "image").mkdir(parents=True)
    (base / "label").mkdir(parents=True)
    for i in range(n):
        img, mask = blobs(rng, size, size)
        Image.fromarray(img[..., 0]).save(base / "image" / f"{i}.png")
        Image.fromarray(255 - mask).save(base / "label" / f"{i}.png")
    return base


def make_drive(root: Path, train_ids: tuple[int, ...] = (21, 22, 23, 24), test_ids: tuple[int, ...] = (1, 2),
               size: tuple[int, int] = (40, 44), seed: int = 0) -> Path:
    """``root/drive/{training,test}/{images,1st_manual,mask}`` as published: LZW TIFF images, GIF vessel and
    field-of-view masks (an inscribed ellipse), ``NN_training.tif`` / ``NN_manual1.gif`` / ``NN_training_mask.gif``."""
    rng = np.random.default_rng(seed)
    base = root / "drive"
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    fov = (((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2 <= 1).astype(np.uint8) * 255
    for split, tag, ids in (("training", "training", train_ids), ("test", "test", test_ids)):
        for sub in ("images", "1st_manual", "mask"):
            (base / split / sub).mkdir(parents=True)
        for i in ids:
            img, vessels = blobs(rng, h, w)
            Image.fromarray(img).save(base / split / "images" / f"{i:02d}_{tag}.tif", compression="tiff_lzw")
            Image.fromarray(vessels).save(base / split / "1st_manual" / f"{i:02d}_manual1.gif")
            Image.fromarray(fov).save(base / split / "mask" / f"{i:02d}_{tag}_mask.gif")
    return base


def make_ph2(root: Path, n: int = 10, size: tuple[int, int] = (40, 48), seed: int = 0, first: int = 2) -> Path:
    """``root/ph2/PH2 Dataset images/IMDnnn/{IMDnnn_Dermoscopic_Image/IMDnnn.bmp, IMDnnn_lesion/IMDnnn_lesion.bmp}``
    as released: 24-bit BMP images and 1-bit BMP lesion masks (one 24-bit mask, as in the real set)."""
    rng = np.random.default_rng(seed)
    base = root / "ph2" / "PH2 Dataset images"
    for i in range(first, first + n):
        case = f"IMD{i:03d}"
        img, lesion = blobs(rng, *size)
        (base / case / f"{case}_Dermoscopic_Image").mkdir(parents=True)
        (base / case / f"{case}_lesion").mkdir(parents=True)
        Image.fromarray(img).save(base / case / f"{case}_Dermoscopic_Image" / f"{case}.bmp")
        mask = Image.fromarray(lesion)
        mask = mask.convert("RGB") if i == first else mask.convert("1")
        mask.save(base / case / f"{case}_lesion" / f"{case}_lesion.bmp")
    return root / "ph2"


@pytest.fixture
def fixtures() -> object:
    """The fixture builders, for tests that need non-default sizes or broken files."""
    import types

    return types.SimpleNamespace(blobs=blobs, make_monuseg=make_monuseg, make_isbi=make_isbi, make_drive=make_drive,
                                 make_ph2=make_ph2)


@pytest.fixture
def monuseg_root(tmp_path: Path) -> Path:
    make_monuseg(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def isbi_root(tmp_path: Path) -> Path:
    make_isbi(tmp_path / "data")
    return tmp_path / "data"
