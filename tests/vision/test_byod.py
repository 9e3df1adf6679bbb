"""Bring your own data: every file format, pairing rule and mask convention, on fixtures written in it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from PIL import Image

from attnkit.vision import FolderSegmentationDataModule, ImageFormatError, load_pairs, read_image
from attnkit.vision.data.formats import IGNORE_INDEX, pair_files, read_pair_list

RNG = np.random.default_rng(0)


def _rgb(h: int = 20, w: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _binary(h: int = 20, w: int = 24, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w)) > 0.6).astype(np.uint8) * 255


# writers of one array into one format: (file suffix, writer, lossless)
def _pil(fmt: str, **kw: Any) -> Callable[[Path, np.ndarray], None]:
    return lambda p, a: Image.fromarray(a).save(p, format=fmt, **kw)


WRITERS: dict[str, tuple[str, Callable[[Path, np.ndarray], None], bool]] = {
    "png": (".png", _pil("PNG"), True),
    "jpeg": (".jpg", _pil("JPEG", quality=95), False),
    "bmp": (".bmp", _pil("BMP"), True),
    "gif": (".gif", _pil("GIF"), True),  # greyscale GIFs are exact; colour ones are quantised (below)
    "tiff": (".tif", lambda p, a: tifffile.imwrite(p, a), True),
    "tiff-lzw": (".tif", _pil("TIFF", compression="tiff_lzw"), True),  # tifffile needs imagecodecs for LZW
    "tiff-deflate": (".tif", lambda p, a: tifffile.imwrite(p, a, compression="zlib"), True),
}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_each_format_reads_images_and_masks(fmt: str, tmp_path: Path) -> None:
    suffix, write, lossless = WRITERS[fmt]
    (tmp_path / "img").mkdir()
    (tmp_path / "mask").mkdir()
    grey = fmt == "gif"  # a GIF holds 256 colours: use a greyscale image, which it keeps exactly
    img = _rgb()[..., 0] if grey else _rgb()
    if not lossless:  # JPEG: a smooth image, which it keeps close
        yy, xx = np.mgrid[:20, :24]
        img = np.stack([yy * 10, xx * 8, 255 - yy * 5 - xx * 4], -1).astype(np.uint8)
    mask = _binary()
    write(tmp_path / "img" / f"a{suffix}", img)
    if fmt != "jpeg":  # JPEG is lossy: no masks in JPEG (its image pairs with a PNG mask)
        write(tmp_path / "mask" / f"a{suffix}", mask)
    else:
        Image.fromarray(mask).save(tmp_path / "mask" / "a.png")
    [pair] = load_pairs(tmp_path / "img", tmp_path / "mask", in_channels=1 if grey else 3)
    chw = img[None] if grey else img.transpose(2, 0, 1)
    assert pair.image.shape == chw.shape and pair.image.dtype == np.uint8
    if lossless:
        np.testing.assert_array_equal(pair.image, chw)
    else:
        assert np.abs(pair.image.astype(int) - chw).mean() < 4
    np.testing.assert_array_equal(pair.mask, (mask == 255).astype(np.int64))


def test_colour_gif_image_becomes_rgb_and_colour_palette_mask_keeps_class_ids(tmp_path: Path) -> None:
    img = np.zeros((8, 10, 3), np.uint8)
    img[:, 5:] = [200, 30, 40]
    Image.fromarray(img).save(tmp_path / "c.gif")
    [arr] = read_image(tmp_path / "c.gif")
    np.testing.assert_array_equal(arr, img)
    labels = np.zeros((8, 10), np.uint8)
    labels[2:4] = 1
    labels[5:] = 2
    pal = Image.fromarray(labels, mode="P")
    pal.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)  # PASCAL VOC style colours
    pal.save(tmp_path / "voc.png")
    np.testing.assert_array_equal(read_image(tmp_path / "voc.png", "mask")[0], labels)
    assert read_image(tmp_path / "voc.png", "image")[0].shape == (8, 10, 3)


def test_16bit_png_and_tiff_by_percentile_and_by_dtype(tmp_path: Path) -> None:
    a16 = (np.arange(20 * 24).reshape(20, 24) * 100 + 1000).astype(np.uint16)
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(a16).save(d / "a.png")  # 16-bit greyscale PNG
    tifffile.imwrite(d / "b.tif", a16)
    assert read_image(d / "a.png")[0].dtype == np.uint16
    by_pct = load_pairs(d, None, in_channels=1)
    by_dtype = load_pairs(d, None, in_channels=1, intensity="dtype")
    for p in by_pct:  # each image stretched over 0..255
        assert p.image.min() == 0 and p.image.max() == 255
    expected = np.rint(a16 / 65535 * 255).astype(np.uint8)[None]
    for p in by_dtype:  # absolute intensities kept: 48900 / 65535 * 255 = 190
        np.testing.assert_array_equal(p.image, expected)
    tifffile.imwrite(d / "f.tif", np.linspace(-1, 3, 20 * 24, dtype=np.float32).reshape(20, 24))
    with pytest.raises(ImageFormatError, match=r"f\.tif is floating point .*\[-1, 3\].*intensity='percentile'"):
        load_pairs(d, None, in_channels=1, intensity="dtype")


def test_rgba_drops_alpha_and_greyscale_is_replicated_for_rgb_models(tmp_path: Path) -> None:
    rgb = _rgb()
    rgba = np.concatenate([rgb, np.full((20, 24, 1), 7, np.uint8)], -1)
    (tmp_path / "i").mkdir()
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "i" / "rgba.png")
    Image.fromarray(rgb[..., 1]).save(tmp_path / "i" / "grey.png")
    pairs = {p.name: p for p in load_pairs(tmp_path / "i", None, in_channels=3)}
    np.testing.assert_array_equal(pairs["rgba"].image, rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(pairs["grey"].image, np.repeat(rgb[None, ..., 1], 3, 0))


def test_nifti_2d_slice_and_3d_volume_with_fov(tmp_path: Path) -> None:
    nib = pytest.importorskip("nibabel", reason="NIfTI support is the optional extra attnkit-vision[nifti]")
    for d in ("img", "seg", "fov"):
        (tmp_path / d).mkdir()
    ct = RNG.normal(0, 300, (16, 12, 3)).astype(np.int16)  # CT-like signed intensities
    seg = (RNG.random((16, 12, 3)) > 0.5).astype(np.uint8)
    fov = np.ones((16, 12, 3), np.uint8)
    fov[:4] = 0
    for name, arr in (("img", ct), ("seg", seg), ("fov", fov)):
        nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / name / "vol.nii.gz")
        nib.save(nib.Nifti1Image(arr[:, :, 0], np.eye(4)), tmp_path / name / "flat.nii")
    pairs = {p.name: p for p in load_pairs(tmp_path / "img", tmp_path / "seg", in_channels=1,
                                           fov_dir=tmp_path / "fov")}
    assert sorted(pairs) == ["flat", "vol#0", "vol#1", "vol#2"]
    assert pairs["flat"].image.shape == (1, 16, 12) and pairs["flat"].image.dtype == np.uint8
    for key, z in (("flat", 0), ("vol#2", 2)):
        m = pairs[key].mask
        assert (m[:4] == IGNORE_INDEX).all()
        np.testing.assert_array_equal(m[4:], seg[4:, :, z])


def _drive(root: Path, ids: tuple[int, ...] = (21, 22), split: str = "training", size: tuple[int, int] = (40, 44),
           ) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """DRIVE's published layout: LZW TIFF images, GIF vessel masks and GIF field-of-view masks."""
    out = {}
    for sub in ("images", "1st_manual", "mask"):
        (root / split / sub).mkdir(parents=True, exist_ok=True)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    fov = (((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2 <= 1).astype(np.uint8) * 255
    for i in ids:
        img, vessels = _rgb(h, w, seed=i), _binary(h, w, seed=100 + i)
        tag = "training" if split == "training" else "test"
        Image.fromarray(img).save(root / split / "images" / f"{i:02d}_{tag}.tif", compression="tiff_lzw")
        Image.fromarray(vessels).save(root / split / "1st_manual" / f"{i:02d}_manual1.gif")
        Image.fromarray(fov).save(root / split / "mask" / f"{i:02d}_{tag}_mask.gif")
        out[i] = (img, vessels, fov)
    return out


DRIVE_OPTIONS = {"id_regex": r"^(\d+)_", "mask_pattern": "{id}_manual1.gif", "fov_pattern": "{stem}_mask.gif"}


def test_drive_layout_pairs_by_pattern_and_ignores_outside_the_fov(tmp_path: Path) -> None:
    truth = _drive(tmp_path)
    dm = FolderSegmentationDataModule(root=str(tmp_path), train_images="training/images",
                                      train_masks="training/1st_manual", train_fov="training/mask",
                                      patch_size=32, samples_per_epoch=4, batch_size=2, **DRIVE_OPTIONS)
    pairs = dm.load_split("train")
    assert [p.name for p in pairs] == ["21_training", "22_training"]
    for p, (img, vessels, fov) in zip(pairs, truth.values(), strict=True):
        np.testing.assert_array_equal(p.image, img.transpose(2, 0, 1))
        expected = np.where(fov > 0, (vessels == 255).astype(np.int64), IGNORE_INDEX)
        np.testing.assert_array_equal(p.mask, expected)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["mask"].shape == (2, 32, 32) and set(batch["mask"].unique().tolist()) <= {IGNORE_INDEX, 0, 1}


def test_pair_list_csv_relative_to_its_folder(tmp_path: Path) -> None:
    truth = _drive(tmp_path / "DRIVE")
    lines = ["image,mask,fov,comment"] + [
        f"training/images/{i}_training.tif,training/1st_manual/{i}_manual1.gif,training/mask/{i}_training_mask.gif,x"
        for i in truth]
    (tmp_path / "DRIVE" / "train.csv").write_text("\n".join(lines) + "\n")
    dm = FolderSegmentationDataModule(root=str(tmp_path / "DRIVE"), train_images="train.csv")
    pairs = dm.load_split("train")
    assert len(pairs) == 2 and (pairs[1].mask == IGNORE_INDEX).any()
    np.testing.assert_array_equal(pairs[1].image, truth[22][0].transpose(2, 0, 1))
    (tmp_path / "bad.csv").write_text("img,mask\na.png,b.png\n")
    with pytest.raises(ImageFormatError, match=r"bad\.csv has columns \['img', 'mask'\]; it needs .*'image'"):
        read_pair_list(tmp_path / "bad.csv")
    (tmp_path / "gone.csv").write_text("image,mask\nDRIVE/training/images/21_training.tif,nope.gif\n")
    with pytest.raises(FileNotFoundError, match=r"gone\.csv line 2: mask file .*nope\.gif does not exist"):
        read_pair_list(tmp_path / "gone.csv")


def test_glob_and_any_suffix_patterns(tmp_path: Path) -> None:
    for d in ("i", "m"):
        (tmp_path / d).mkdir()
    for stem in ("case[1]", "case2"):
        Image.fromarray(_rgb()).save(tmp_path / "i" / f"{stem}.png")
        Image.fromarray(_binary()).save(tmp_path / "m" / f"{stem}_seg_v2.bmp")
    images = sorted((tmp_path / "i").iterdir())
    got = pair_files(images, tmp_path / "m", mask_pattern="{stem}_seg_*.bmp")  # brackets in stems stay literal
    assert [m.name for _, m, _ in got] == ["case2_seg_v2.bmp", "case[1]_seg_v2.bmp"]
    Image.fromarray(_binary()).save(tmp_path / "m" / "case2_seg_v3.bmp")
    with pytest.raises(ImageFormatError, match=r"case2\.png: several masks match case2_seg_\*\.bmp .*more specific"):
        pair_files(images, tmp_path / "m", mask_pattern="{stem}_seg_*.bmp")
    with pytest.raises(ValueError, match=r"uses \{name\}; only \{stem\} .* and \{id\}"):
        pair_files(images, tmp_path / "m", mask_pattern="{name}.png")


def test_multiclass_label_ids_and_ignore_value(tmp_path: Path) -> None:
    for d in ("i", "m"):
        (tmp_path / d).mkdir()
    labels = np.random.default_rng(3).integers(0, 3, (20, 24)).astype(np.uint8)
    labels[0, :5] = 255  # "don't care"
    Image.fromarray(_rgb()).save(tmp_path / "i" / "a.png")
    Image.fromarray(labels).save(tmp_path / "m" / "a.png")
    with pytest.raises(ImageFormatError, match=r"values \[0, 1, 2, 255\].*or ignore_value"):
        load_pairs(tmp_path / "i", tmp_path / "m", num_classes=3)
    [p] = load_pairs(tmp_path / "i", tmp_path / "m", num_classes=3, ignore_value=255)
    np.testing.assert_array_equal(p.mask, np.where(labels == 255, IGNORE_INDEX, labels.astype(np.int64)))


# ------------------------------------------------------------------------------------------- bad input


def test_bad_input_unreadable_tiff_names_file_and_fix(tmp_path: Path) -> None:
    """A TIFF with a codec neither tifffile (without imagecodecs) nor Pillow decodes."""
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, _rgb())
    data = bytearray(path.read_bytes())
    tifffile_ok = True
    try:  # set the Compression tag (259) to JPEG XL (50002)
        with tifffile.TiffFile(path) as tif:
            tag = tif.pages[0].tags[259]
            offset = tag.valueoffset
        data[offset : offset + 2] = (50002).to_bytes(2, "little")
        path.write_bytes(bytes(data))
        tifffile.imread(path)
    except Exception as e:
        tifffile_ok = False
        needs_codecs = "imagecodecs" in str(e)
    if tifffile_ok or not needs_codecs:
        pytest.skip("imagecodecs is installed: tifffile decodes this TIFF")
    with pytest.raises(ImageFormatError, match=r"cannot read .*odd\.tif: .*pip install imagecodecs"):
        read_image(path)


def test_bad_input_image_without_mask_names_pattern_and_id(tmp_path: Path) -> None:
    _drive(tmp_path)
    (tmp_path / "training" / "1st_manual" / "22_manual1.gif").unlink()
    with pytest.raises(ImageFormatError, match=re.escape("22_training.tif has no mask named 22_manual1.gif in ")
                       + r".*1st_manual \(mask_pattern='\{id\}_manual1\.gif', stem='22_training', id='22'\)"):
        load_pairs(tmp_path / "training" / "images", tmp_path / "training" / "1st_manual", **DRIVE_OPTIONS)
    with pytest.raises(ImageFormatError, match=r"has no field-of-view mask named 21_training\.\* .*fov_pattern"):
        load_pairs(tmp_path / "training" / "images", tmp_path / "training" / "images",
                   fov_dir=tmp_path / "training" / "1st_manual")


def test_bad_input_mismatched_fov_size_names_both_files(tmp_path: Path) -> None:
    _drive(tmp_path)
    Image.fromarray(np.zeros((30, 44), np.uint8)).save(tmp_path / "training" / "mask" / "21_training_mask.gif")
    with pytest.raises(ImageFormatError, match=r"21_training\.tif is 40x44 but its field-of-view mask "
                                               r".*21_training_mask\.gif is 30x44"):
        load_pairs(tmp_path / "training" / "images", tmp_path / "training" / "1st_manual",
                   fov_dir=tmp_path / "training" / "mask", **DRIVE_OPTIONS)


def test_bad_input_unreadable_mask_names_it(tmp_path: Path) -> None:
    _drive(tmp_path)
    (tmp_path / "training" / "1st_manual" / "21_manual1.gif").write_bytes(b"GIF89a truncated")
    with pytest.raises(ImageFormatError, match=r"cannot read .*21_manual1\.gif"):
        load_pairs(tmp_path / "training" / "images", tmp_path / "training" / "1st_manual", **DRIVE_OPTIONS)


def test_drive_yaml_from_the_docs_fits_tests_and_predicts(tmp_path: Path) -> None:
    """The YAML in docs/vision.md, on a DRIVE-like fixture, through the CLI."""
    from attnkit.core.cli import main

    docs = (Path(__file__).parents[2] / "docs" / "vision.md").read_text()
    block = docs[docs.index("## Bring your own data"):]
    yaml_text = block[block.index("```yaml\n") + 8 :]
    yaml_text = yaml_text[: yaml_text.index("```")]
    cfg = tmp_path / "drive-unet.yaml"
    cfg.write_text(yaml_text)
    _drive(tmp_path / "data" / "DRIVE", ids=(21, 22, 23))
    _drive(tmp_path / "data" / "DRIVE", ids=(1, 2), split="test")
    small = ["--model.model.init_args.encoder_name", "tu-mobilenetv3_small_050", "--data.patch_size", "32",
             "--model.patch_size", "32", "--data.batch_size", "2", "--data.samples_per_epoch", "2",
             "--trainer.max_epochs", "1", "--trainer.enable_progress_bar=false"]
    assert main(["fit", "-c", str(cfg), *small]) == 0
    assert main(["test", "-c", str(cfg), *small, "--ckpt_path", "last"]) == 0
    import csv

    rows = [r for f in Path("runs/drive-unet/logs").glob("version_*/metrics.csv") for r in csv.DictReader(open(f))]
    test_row = next(r for r in rows if r.get("test/auroc"))
    assert 0.0 <= float(test_row["test/auroc"]) <= 1.0 and 0.0 <= float(test_row["test/dice"]) <= 1.0
    out = tmp_path / "pred"
    assert main(["predict", "-c", str(cfg), *small, "--ckpt_path", "last", "--data.predict_dir",
                 "data/DRIVE/test/images", "--model.output_dir", str(out)]) == 0
    prob = np.asarray(Image.open(out / "01_test_prob.png"))
    mask = np.asarray(Image.open(out / "01_test_mask.png"))
    assert prob.dtype == np.uint16 and prob.shape == mask.shape == (40, 44)
    assert ((mask == 255) == (prob > 32767.5)).mean() > 0.99  # exactness: test_write_segmentation_*


def test_cli_overrides_turn_a_packaged_config_to_folder_data(tmp_path: Path) -> None:
    from attnkit.core.cli import main

    _drive(tmp_path / "DRIVE", ids=(21, 22))
    _drive(tmp_path / "DRIVE", ids=(1,), split="test")
    args = ["-c", "unet-monuseg", "--data", "FolderSegmentationDataModule", "--data.root", str(tmp_path / "DRIVE"),
            "--data.train_images", "training/images", "--data.train_masks", "training/1st_manual",
            "--data.train_fov", "training/mask", "--data.test_images", "test/images",
            "--data.test_masks", "test/1st_manual", "--data.test_fov", "test/mask",
            "--data.id_regex", r"^(\d+)_", "--data.mask_pattern", "{id}_manual1.gif",
            "--data.fov_pattern", "{stem}_mask.gif", "--trainer.default_root_dir", "runs/drive-unet",
            "--model.model.init_args.encoder_name", "tu-mobilenetv3_small_050", "--data.patch_size", "32",
            "--model.patch_size", "32", "--data.batch_size", "2", "--data.samples_per_epoch", "2",
            "--trainer.enable_progress_bar=false"]
    assert main(["fit", *args, "--trainer.max_epochs", "1"]) == 0
    assert Path("runs/drive-unet/checkpoints/last.ckpt").is_file()
    saved = next(Path("runs/drive-unet").rglob("config.yaml")).read_text()
    assert "FolderSegmentationDataModule" in saved and "{id}_manual1.gif" in saved
