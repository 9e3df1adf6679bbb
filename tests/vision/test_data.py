from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from attnkit.core.data import get_dataset
from attnkit.vision import (
    DRIVEDataModule,
    FolderSegmentationDataModule,
    ImageFormatError,
    ISBI2012DataModule,
    MoNuSegDataModule,
    PH2DataModule,
    SegmentationAugment,
    load_pairs,
    read_image,
)
from attnkit.vision.data import IGNORE_INDEX


def _pair_dirs(tmp_path: Path, fixtures: Any, n: int = 2, size: tuple[int, int] = (40, 48)) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    imgs, masks = tmp_path / "img", tmp_path / "mask"
    imgs.mkdir()
    masks.mkdir()
    for i in range(n):
        img, mask = fixtures.blobs(rng, *size)
        Image.fromarray(img).save(imgs / f"im{i}.png")
        Image.fromarray(mask).save(masks / f"im{i}.png")
    return imgs, masks


def test_monuseg_layout_reads_tiff_test_images(monuseg_root: Path) -> None:
    dm = MoNuSegDataModule(root=str(monuseg_root), patch_size=32, samples_per_epoch=5, batch_size=2)
    test = dm.load_split("test")
    assert [p.path.suffix for p in test] == [".tif", ".tif"]
    assert test[0].image.shape == (3, 72, 80) and test[0].image.dtype == np.uint8
    assert set(np.unique(test[0].mask)) <= {0, 1} and test[0].mask.any()
    assert test[0].mask.dtype == np.int16  # 2 bytes a pixel in memory; the loaders hand out int64
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (2, 32, 32) and batch["mask"].dtype == torch.long
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape == (1, 3, 72, 80) and val["mask"].shape == (1, 72, 80)
    assert val["mask"].dtype == torch.long
    assert dm.num_classes == 2 and dm.in_channels == 3


def test_isbi_folds_partition_the_slices(isbi_root: Path) -> None:
    seen = []
    for fold in range(5):
        dm = ISBI2012DataModule(root=str(isbi_root), fold=fold, num_folds=5)
        train, test = dm.load_split("train"), dm.load_split("test")
        assert len(train) == 8 and len(test) == 2
        assert not {p.name for p in train} & {p.name for p in test}
        seen += [p.name for p in test]
        assert train[0].image.shape == (1, 64, 64)
        assert train[0].image.flags.writeable  # greyscale PNGs decode read-only; tensors share this memory
    assert sorted(seen, key=int) == [str(i) for i in range(10)]
    # label 255 = cell -> class 0; membrane (0) -> class 1
    raw = np.asarray(Image.open(isbi_root / "isbi2012-em" / "label" / "0.png"))
    dm = ISBI2012DataModule(root=str(isbi_root), fold=4)
    pair = next(p for p in dm.load_split("train") if p.name == "0")
    np.testing.assert_array_equal(pair.mask, (raw == 0).astype(np.int64))
    with pytest.raises(ValueError, match=r"fold must be in 0\.\.4"):
        ISBI2012DataModule(fold=5)


def test_size_mismatch_names_the_files(tmp_path: Path, fixtures: Any) -> None:
    imgs, masks = _pair_dirs(tmp_path, fixtures)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(masks / "im1.png")
    with pytest.raises(ImageFormatError, match=r"im1\.png is 40x48 but its mask .*im1\.png is 10x10"):
        load_pairs(imgs, masks)


def test_mask_values_outside_class_set(tmp_path: Path, fixtures: Any) -> None:
    imgs, masks = _pair_dirs(tmp_path, fixtures)
    m = np.zeros((40, 48), np.uint8)
    m[0, :3] = [1, 7, 255]
    Image.fromarray(m).save(masks / "im0.png")
    with pytest.raises(ImageFormatError, match=r"mask .*im0\.png has values \[0, 1, 7, 255\].*mask_values"):
        load_pairs(imgs, masks)
    with pytest.raises(ImageFormatError, match=r"im0\.png has values \[1, 7\] outside mask_values=\[0, 255\]"):
        load_pairs(imgs, masks, mask_values=[0, 255])
    pairs = load_pairs(imgs, masks, num_classes=4, mask_values=[0, 1, 7, 255])
    assert pairs[0].mask[0, :3].tolist() == [1, 2, 3]


def test_mixed_grey_and_rgb(tmp_path: Path, fixtures: Any) -> None:
    imgs, masks = _pair_dirs(tmp_path, fixtures)
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(imgs / "im1.png")
    with pytest.raises(ImageFormatError, match=r"mixed greyscale and RGB images: .*im1\.png is greyscale but .*im0"):
        load_pairs(imgs, masks)


def test_empty_folder_unreadable_file_and_missing_mask(tmp_path: Path, fixtures: Any) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageFormatError, match="empty holds no images"):
        load_pairs(tmp_path / "empty", None)
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        load_pairs(tmp_path / "nowhere", None)
    imgs, masks = _pair_dirs(tmp_path, fixtures)
    (imgs / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ImageFormatError, match=r"cannot read .*broken\.png"):
        load_pairs(imgs, None)
    (imgs / "broken.png").unlink()
    (masks / "im1.png").unlink()
    with pytest.raises(ImageFormatError, match=r"im1\.png has no mask named im1\.\*"):
        load_pairs(imgs, masks)


def test_jpeg_tiff_and_channel_checks(tmp_path: Path) -> None:
    import tifffile

    rgb = np.random.default_rng(0).integers(0, 255, (3, 20, 24), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "chw.tif", rgb)  # channels-first TIFF
    assert read_image(tmp_path / "chw.tif")[0].shape == (20, 24, 3)
    tifffile.imwrite(tmp_path / "u16.tif", (np.arange(20 * 24).reshape(20, 24) * 50).astype(np.uint16))
    Image.fromarray(rgb.transpose(1, 2, 0)).save(tmp_path / "a.jpg")
    assert read_image(tmp_path / "a.jpg")[0].shape == (20, 24, 3)
    d = tmp_path / "u16only"
    d.mkdir()
    (tmp_path / "u16.tif").rename(d / "u16.tif")
    [p] = load_pairs(d, None, in_channels=1)
    assert p.image.dtype == np.uint8 and p.image.max() == 255 and p.image.min() == 0
    [p3] = load_pairs(d, None, in_channels=3)  # greyscale for an RGB model: replicated
    assert p3.image.shape == (3, 20, 24) and (p3.image == p.image).all()
    Image.fromarray(rgb.transpose(1, 2, 0)).save(d / "rgb.png")
    with pytest.raises(ImageFormatError, match=r"rgb\.png has 3 channel\(s\) but in_channels=1"):
        load_pairs(d, None, in_channels=1)


def test_nifti_volumes_are_sliced(tmp_path: Path) -> None:
    nib = pytest.importorskip("nibabel", reason="NIfTI support is the optional extra attnkit-vision[nifti]")
    vol = np.random.default_rng(0).integers(0, 255, (16, 20, 3)).astype(np.uint8)
    seg = (vol > 128).astype(np.uint8)
    (tmp_path / "img").mkdir()
    (tmp_path / "seg").mkdir()
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "img" / "case.nii.gz")
    nib.save(nib.Nifti1Image(seg, np.eye(4)), tmp_path / "seg" / "case.nii.gz")
    pairs = load_pairs(tmp_path / "img", tmp_path / "seg", in_channels=1)
    assert [p.name for p in pairs] == ["case#0", "case#1", "case#2"]
    np.testing.assert_array_equal(pairs[1].mask, seg[:, :, 1])


def test_nifti_without_nibabel_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "nibabel", None)  # import fails as if not installed
    (tmp_path / "case.nii.gz").write_bytes(b"\x00")
    with pytest.raises(ImageFormatError, match=r"case\.nii\.gz is NIfTI; install .*attnkit-vision\[nifti\]"):
        read_image(tmp_path / "case.nii.gz")


def test_augmentation_keeps_image_and_mask_aligned() -> None:
    torch.manual_seed(0)
    aug = SegmentationAugment(degrees=20, scale=(0.9, 1.1), elastic_alpha=20.0)
    mask = torch.zeros(48, 48, dtype=torch.long)
    mask[10:30, 5:20] = 1
    image = mask[None].float().repeat(3, 1, 1)
    changed = 0
    for _ in range(10):
        img_a, mask_a = aug(image, mask)
        assert img_a.shape == (3, 48, 48) and mask_a.shape == (48, 48) and mask_a.dtype == torch.long
        assert set(mask_a.unique().tolist()) <= {0, 1}
        agree = ((img_a[0] > 0.5).long() == mask_a).float().mean()
        assert agree > 0.97
        changed += int(not torch.equal(mask_a, mask))
    assert changed >= 5
    jitter = SegmentationAugment(flip=False, rotate90=False, brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1)
    rgb = torch.rand(3, 16, 16)
    out, m = jitter(rgb, mask[:16, :16])
    assert not torch.allclose(out, rgb) and torch.equal(m, mask[:16, :16])
    grey, _ = jitter(torch.rand(1, 16, 16), mask[:16, :16])  # greyscale: no saturation/hue, no crash
    assert grey.shape == (1, 16, 16)


def test_patches_pad_small_images(tmp_path: Path, fixtures: Any) -> None:
    _pair_dirs(tmp_path, fixtures, size=(20, 24))
    dm = FolderSegmentationDataModule(root=str(tmp_path), train_images="img", train_masks="mask", patch_size=32,
                                      samples_per_epoch=3, batch_size=3)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 3, 32, 32)


def test_datasets_are_registered() -> None:
    mon, isbi = get_dataset("monuseg"), get_dataset("isbi2012-em")
    assert len(mon.files) == 88 and sum(f.path.startswith("Test_Folder/img/") for f in mon.files) == 14
    assert all(f.sha256 and f.url and f.url.startswith("https://") for f in mon.files)
    assert len(isbi.files) == 60 and "CC BY-NC-SA" in mon.licence


def test_drive_splits_hold_out_the_last_training_images_and_ignore_outside_the_fov(tmp_path: Path,
                                                                                 fixtures: Any) -> None:
    base = fixtures.make_drive(tmp_path / "data")
    dm = DRIVEDataModule(root=str(tmp_path / "data"), num_val=1, patch_size=32, samples_per_epoch=4, batch_size=2)
    assert [p.name for p in dm.load_split("train")] == ["21_training", "22_training", "23_training"]
    assert [p.name for p in dm.load_split("val")] == ["24_training"]
    test = dm.load_split("test")
    assert [p.name for p in test] == ["01_test", "02_test"]
    fov = np.asarray(Image.open(base / "test" / "mask" / "01_test_mask.gif")) > 0
    vessels = np.asarray(Image.open(base / "test" / "1st_manual" / "01_manual1.gif")) > 0
    np.testing.assert_array_equal(test[0].mask, np.where(fov, vessels.astype(np.int64), IGNORE_INDEX))
    assert (test[0].mask == IGNORE_INDEX).any() and (test[0].mask == 1).any()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32)
    whole = DRIVEDataModule(root=str(tmp_path / "data"))  # the standard protocol: all training images, no val
    assert len(whole.load_split("train")) == 4 and whole.load_split("val") == [] and whole.val_dataloader() == []
    with pytest.raises(ValueError, match=r"num_val must be in 0\.\.19"):
        DRIVEDataModule(num_val=20)


def test_drive_is_registered_with_both_observers() -> None:
    drive = get_dataset("drive")
    assert len(drive.files) == 140 and all(f.sha256 and f.url.startswith("https://") for f in drive.files)
    assert sum(f.path.startswith("test/2nd_manual/") for f in drive.files) == 20
    assert sum(f.path.startswith("training/images/") and f.path.endswith(".tif") for f in drive.files) == 20


def test_drive_real_data_layout(real_data_dir: Path) -> None:
    if not (real_data_dir / "drive").is_dir():
        pytest.skip(f"{real_data_dir}/drive is absent (added to ../shared/data in the sixth session)")
    dm = DRIVEDataModule(root=str(real_data_dir))
    train, test = dm.load_split("train"), dm.load_split("test")
    assert len(train) == 20 and len(test) == 20 and test[0].image.shape == (3, 584, 565)
    vessel_share = np.mean([(p.mask == 1).sum() / (p.mask >= 0).sum() for p in test])
    assert 0.08 < vessel_share < 0.18  # ~12.7% of the field of view is vessel (first observer)


def test_ph2_folds_interleave_the_cases_and_partition_them(tmp_path: Path, fixtures: Any) -> None:
    base = fixtures.make_ph2(tmp_path / "data", n=10)  # IMD002..IMD011
    tested: list[str] = []
    for fold in range(5):
        dm = PH2DataModule(root=str(tmp_path / "data"), fold=fold, num_folds=5)
        train, test = dm.load_split("train"), dm.load_split("test")
        assert [p.name for p in test] == [f"IMD{2 + fold:03d}", f"IMD{7 + fold:03d}"]  # every 5th case
        assert len(train) == 8 and not {p.name for p in train} & {p.name for p in test}
        assert dm.load_split("val") == [] and dm.val_dataloader() == []
        tested += [p.name for p in test]
    assert sorted(tested) == [f"IMD{i:03d}" for i in range(2, 12)]
    dm = PH2DataModule(root=str(tmp_path / "data"), fold=1, num_val=2, patch_size=32, samples_per_epoch=4,
                       batch_size=2)
    assert [p.name for p in dm.load_split("val")] == ["IMD010", "IMD011"]
    assert [p.name for p in dm.load_split("train")] == ["IMD002", "IMD004", "IMD005", "IMD006", "IMD007", "IMD009"]
    case = dm.load_split("train")[0]  # the 24-bit BMP mask reads like the 1-bit ones
    lesion = np.asarray(Image.open(base / "PH2 Dataset images" / "IMD002" / "IMD002_lesion" / "IMD002_lesion.bmp"))
    np.testing.assert_array_equal(case.mask, (lesion[..., 0] > 0).astype(np.int64))
    assert case.image.shape == (3, 40, 48) and set(np.unique(dm.load_split("val")[0].mask)) == {0, 1}
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32)


def test_ph2_says_what_is_wrong(tmp_path: Path, fixtures: Any) -> None:
    base = fixtures.make_ph2(tmp_path / "data", n=6)
    (base / "PH2 Dataset images" / "IMD004" / "IMD004_lesion" / "IMD004_lesion.bmp").unlink()
    with pytest.raises(ImageFormatError, match=r"IMD004.*no lesion mask IMD004_lesion/IMD004_lesion\.bmp"):
        PH2DataModule(root=str(tmp_path / "data")).load_split("train")
    (tmp_path / "flat" / "ph2" / "IMD002").mkdir(parents=True)  # cases unpacked without the release's top folder
    with pytest.raises(ImageFormatError, match="PH2 Dataset images is missing"):
        PH2DataModule(root=str(tmp_path / "flat")).load_split("test")
    with pytest.raises(ValueError, match=r"fold must be in 0\.\.4"):
        PH2DataModule(fold=5)
    with pytest.raises(ValueError, match=r"num_val=8 leaves no training images"):
        (base / "PH2 Dataset images" / "IMD004").rename(base / "unused")
        PH2DataModule(root=str(tmp_path / "data"), num_val=8, num_folds=2).load_split("train")


def test_ph2_is_registered_with_every_image_and_lesion_mask() -> None:
    ph2 = get_dataset("ph2")
    assert len(ph2.files) == 400 and all(f.sha256 and f.size > 0 for f in ph2.files)
    assert sum(f.path.endswith("_lesion.bmp") for f in ph2.files) == 200
    assert all(f.path.startswith("PH2 Dataset images/IMD") and " " not in f.url for f in ph2.files)


def test_ph2_real_data_layout(real_data_dir: Path) -> None:
    if not (real_data_dir / "ph2").is_dir():
        pytest.skip(f"{real_data_dir}/ph2 is absent (added to ../shared/data in the tenth session)")
    dm = PH2DataModule(root=str(real_data_dir))
    train, test = dm.load_split("train"), dm.load_split("test")
    assert len(train) == 160 and len(test) == 40 and test[0].image.shape[0] == 3
    assert all(560 <= p.image.shape[1] <= 580 and 760 <= p.image.shape[2] <= 770 for p in test)
    lesion_share = np.mean([p.mask.mean() for p in test])
    assert 0.15 < lesion_share < 0.45  # lesions are large: ~30% of the image on fold 0


def test_monuseg_real_data_layout(real_data_dir: Path) -> None:
    dm = MoNuSegDataModule(root=str(real_data_dir))
    val = dm.load_split("val")
    assert len(val) == 6 and val[0].image.shape == (3, 1000, 1000)
    assert 0.05 < np.mean([p.mask.mean() for p in val]) < 0.5


def test_int16_masks_give_the_same_augmented_patches_as_int64(tmp_path: Path, fixtures: Any) -> None:
    """Masks are held as int16; flips, rotations, the affine and elastic warps and padding treat them as int64."""
    from dataclasses import replace

    from attnkit.vision.data.datasets import PatchDataset

    imgs, masks = _pair_dirs(tmp_path, fixtures, n=2, size=(40, 48))
    pairs = load_pairs(imgs, masks, num_classes=2)
    pairs = [replace(p, mask=np.where(np.arange(p.mask.shape[1]) < 20, IGNORE_INDEX, p.mask).astype(np.int16))
             for p in pairs if p.mask is not None]  # an ignored border, as a field of view makes
    wide = [replace(p, mask=p.mask.astype(np.int64)) for p in pairs if p.mask is not None]
    augment = SegmentationAugment(degrees=20.0, elastic_alpha=30.0)
    for ps in (32, 56):  # 56 > 40: patches of the 40x48 images are padded
        torch.manual_seed(0)
        a = [PatchDataset(pairs, ps, 6, augment=augment, seed=3)[i] for i in range(6)]
        torch.manual_seed(0)
        b = [PatchDataset(wide, ps, 6, augment=augment, seed=3)[i] for i in range(6)]
        for x, y in zip(a, b, strict=True):
            assert x["mask"].dtype == y["mask"].dtype == torch.long
            assert torch.equal(x["mask"], y["mask"]) and torch.equal(x["image"], y["image"])
        assert any((x["mask"] == IGNORE_INDEX).any() for x in a)


def test_scale_resamples_training_images_and_serves_evaluation_images_rescaled(tmp_path: Path,
                                                                               fixtures: Any) -> None:
    """``scale``: training pairs resampled once (image antialiased, mask nearest: only class values), patches
    cut from them; whole images served rescaled with mask and raw image at the original size."""
    from attnkit.vision.data import ImageDataset, rescale_pair

    _pair_dirs(tmp_path, fixtures, size=(40, 48))
    args = {"root": str(tmp_path), "train_images": "img", "train_masks": "mask", "val_images": "img",
            "val_masks": "mask", "patch_size": 16, "samples_per_epoch": 4, "batch_size": 4}
    dm = FolderSegmentationDataModule(**args, scale=0.5)
    full = dm.load_split("train")[0]
    small = rescale_pair(full, 0.5)
    assert small.image.shape == (3, 20, 24) and small.image.dtype == np.uint8
    assert small.mask is not None and full.mask is not None and small.mask.shape == (20, 24)
    assert set(np.unique(small.mask)) <= set(np.unique(full.mask))
    # nearest neighbour at a factor 2: every mask pixel is one of the pixels it covers
    assert np.array_equal(small.mask, full.mask[1::2, 1::2]) or np.array_equal(small.mask, full.mask[::2, ::2])
    # antialiased: the mean colour is kept (a plain subsampling would not average)
    assert abs(small.image.astype(float).mean() - full.image.astype(float).mean()) < 2.0
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 16, 16)
    patch_images = {tuple(t.shape) for t in dm.train_dataloader().dataset.images}  # type: ignore[attr-defined]
    assert patch_images == {(3, 20, 24)}
    item = ImageDataset(dm.load_split("val"), scale=0.5)[0]
    assert item["image"].shape == (3, 20, 24)  # type: ignore[union-attr]
    assert item["mask"].shape == (40, 48) and item["raw"].shape == (3, 40, 48)  # type: ignore[union-attr]
    val = next(iter(dm.val_dataloader()))
    assert val["image"][0].shape == (3, 20, 24) and val["mask"][0].shape == (40, 48)
    # scale 1 changes nothing; a bad scale is named
    one = FolderSegmentationDataModule(**args)
    assert next(iter(one.val_dataloader()))["image"][0].shape == (3, 40, 48)
    with pytest.raises(ValueError, match="scale must be > 0"):
        FolderSegmentationDataModule(**args, scale=0)
    with pytest.raises(ValueError, match="scale must be > 0"):
        PH2DataModule(scale=-1.0)
