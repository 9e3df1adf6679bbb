"""Lightning data modules for folder datasets, MoNuSeg (UCTransNet split), ISBI 2012 EM (k-fold), DRIVE and PH2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from attnkit.core.data import dataset_dir, fetch
from attnkit.core.data.distributed import eval_sampler, global_seed
from attnkit.core.data.resume import ResumableLoader
from attnkit.vision.data.augment import SegmentationAugment
from attnkit.vision.data.datasets import ImageDataset, PatchDataset, PatchSampler, rescale_pair
from attnkit.vision.data.formats import (
    DEFAULT_PATTERN,
    ImageFormatError,
    Intensity,
    SegmentationPair,
    load_files,
    load_pairs,
)

__all__ = [
    "DRIVEDataModule",
    "FolderSegmentationDataModule",
    "ISBI2012DataModule",
    "MoNuSegDataModule",
    "PH2DataModule",
    "collate_images",
]


def collate_images(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch whole images: tensors are stacked when they share a shape, otherwise kept as lists."""
    out: dict[str, Any] = {}
    for key in items[0]:
        vals = [it[key] for it in items]
        if isinstance(vals[0], torch.Tensor) and all(v.shape == vals[0].shape for v in vals):
            out[key] = torch.stack(vals)
        else:
            out[key] = vals
    return out


class FolderSegmentationDataModule(LightningDataModule):
    r"""Image/mask folders: random augmented patches for training, whole images for evaluation.

    Masks pair with images by file stem (``a.tif`` with ``a.png``), by a file-name pattern
    (``mask_pattern``, ``id_regex``) or by a CSV list given instead of an image folder. An optional
    field-of-view mask per image (``*_fov`` folders, ``fov_pattern``) marks the pixels that count: the others
    are ignored by the loss and by every metric. Validation, test and prediction images are served whole, one
    per batch; the task predicts them with sliding windows. File reading and conversions:
    :func:`attnkit.vision.data.formats.load_pairs`.

    Args:
        root: folder the relative paths below start from (default: the working directory).
        train_images: training images: a folder, or a CSV file with columns ``image,mask[,fov]`` (paths
            relative to the CSV's folder; the ``*_masks`` and ``*_fov`` folders are then unused).
        train_masks: training masks.
        val_images: validation images, folder or CSV (``None``: no validation).
        val_masks: validation masks.
        test_images: test images, folder or CSV (``None``: no test set).
        test_masks: test masks.
        predict_dir: folder of unlabelled images for ``predict``.
        num_classes: classes ``K`` including background 0.
        in_channels: image channels (1 grey or 3 RGB); images must match, except that greyscale images are
            replicated to 3 channels when ``in_channels=3``.
        mask_values: raw mask value of each class, e.g. ``[0, 255]`` (default: ``0..K-1``, or ``{0, 255}``
            for binary masks).
        patch_size: side of the random training patches.
        samples_per_epoch: training patches per epoch.
        batch_size: training patches per batch.
        num_workers: data loader workers.
        augment: apply flips and 90° rotations (plus the options below) to training patches.
        degrees: random rotation range of the affine augmentation (0: off).
        elastic_alpha: elastic deformation strength (0: off).
        colour_jitter: brightness / contrast / saturation strength (hue a quarter of it); 0: off.
        mean: normalisation mean per channel (default ImageNet for RGB, 0.5 for grey).
        std: normalisation std per channel.
        train_fov: field-of-view masks of the training images (nonzero = counts; ``None``: all pixels).
        val_fov: field-of-view masks of the validation images.
        test_fov: field-of-view masks of the test images.
        mask_pattern: mask file name for an image: ``{stem}`` is the image's name without suffix, ``{id}``
            what ``id_regex`` picks out of it; ``.*`` at the end means any image suffix; ``*``/``?`` glob.
        fov_pattern: field-of-view file name for an image (same fields).
        id_regex: regular expression searched in the image stem; its first group (or whole match) is
            ``{id}`` (``"^(\d+)_"`` gives ``21`` for ``21_training``).
        ignore_value: raw mask value meaning "don't care" (ignored like pixels outside the field of view).
        intensity: how images that are not 8-bit become 8-bit: ``"percentile"`` (each image's 0.5 / 99.5
            percentiles to 0 / 255) or ``"dtype"`` (divide by the dtype's range, e.g. 65535).
        scale: resample every image by this factor before the model sees it (``0.5`` halves each side, so a
            ``patch_size`` patch covers 4x the area of the original image). Training images are resampled
            once (bilinear, antialiased; masks by nearest neighbour) and patches cut from them; validation,
            test and prediction images are resampled as they are served, and the task resamples its logits
            back to the original size, so losses, metrics and written masks are at the original resolution.

    """

    def __init__(
        self,
        root: str | None = None,
        train_images: str = "train/images",
        train_masks: str = "train/masks",
        val_images: str | None = None,
        val_masks: str | None = None,
        test_images: str | None = None,
        test_masks: str | None = None,
        predict_dir: str | None = None,
        num_classes: int = 2,
        in_channels: int = 3,
        mask_values: list[int] | None = None,
        patch_size: int = 256,
        samples_per_epoch: int = 256,
        batch_size: int = 8,
        num_workers: int = 0,
        augment: bool = True,
        degrees: float = 0.0,
        elastic_alpha: float = 0.0,
        colour_jitter: float = 0.0,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        train_fov: str | None = None,
        val_fov: str | None = None,
        test_fov: str | None = None,
        mask_pattern: str = DEFAULT_PATTERN,
        fov_pattern: str = DEFAULT_PATTERN,
        id_regex: str | None = None,
        ignore_value: int | None = None,
        intensity: Intensity = "percentile",
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be > 0 (0.5 halves each side of every image), got {scale}")
        self.save_hyperparameters()
        self.scale = float(scale)
        self._scaled_train: list[SegmentationPair] | None = None
        self.root = root
        self.num_classes, self.in_channels = num_classes, in_channels
        self.mask_values = mask_values
        self._fov = {"train": train_fov, "val": val_fov, "test": test_fov}
        self.mask_pattern, self.fov_pattern, self.id_regex = mask_pattern, fov_pattern, id_regex
        self.ignore_value, self.intensity = ignore_value, intensity
        self.patch_size, self.samples_per_epoch = patch_size, samples_per_epoch
        self.batch_size, self.num_workers = batch_size, num_workers
        self.predict_dir = predict_dir
        self.mean, self.std = mean, std
        self._dirs = {"train": (train_images, train_masks), "val": (val_images, val_masks),
                      "test": (test_images, test_masks)}
        self.augmentation = SegmentationAugment(
            flip=augment, rotate90=augment, degrees=degrees if augment else 0.0,
            elastic_alpha=elastic_alpha if augment else 0.0,
            brightness=colour_jitter if augment else 0.0, contrast=colour_jitter if augment else 0.0,
            saturation=colour_jitter if augment else 0.0, hue=colour_jitter / 4 if augment else 0.0,
        )
        self.splits: dict[str, list[SegmentationPair]] = {}

    @property
    def base_dir(self) -> Path:
        """Folder the relative split paths start from."""
        return Path(self.root) if self.root is not None else Path.cwd()

    def _load(self, images: str | None, masks: str | None, fov: str | None = None) -> list[SegmentationPair]:
        if images is None:
            return []
        base = self.base_dir
        csv_list = images.lower().endswith(".csv")
        mask_dir = None if masks is None or csv_list else base / masks
        fov_dir = None if fov is None or csv_list else base / fov
        return load_pairs(base / images, mask_dir, num_classes=self.num_classes, mask_values=self.mask_values,
                          in_channels=self.in_channels, mask_pattern=self.mask_pattern, fov_dir=fov_dir,
                          fov_pattern=self.fov_pattern, id_regex=self.id_regex, ignore_value=self.ignore_value,
                          intensity=self.intensity)

    def load_split(self, split: str) -> list[SegmentationPair]:
        """Return the pairs of ``"train"``, ``"val"`` or ``"test"`` (loaded once, then cached)."""
        if split not in self.splits:
            self.splits[split] = self._load(*self._dirs[split], self._fov[split])
        return self.splits[split]

    def setup(self, stage: str) -> None:
        """Load the images the stage needs."""
        if stage == "fit":
            self.load_split("train")
            self.load_split("val")
        elif stage == "validate":
            self.load_split("val")
        elif stage == "test":
            self.load_split("test")
        elif stage == "predict" and self.predict_dir is None:
            raise ValueError("predict needs images: pass --data.predict_dir FOLDER")

    def train_dataloader(self) -> DataLoader[Any]:
        """Random augmented patches: this process's share of each epoch (see :class:`PatchSampler`).

        Patches are a pure function of (``seed_everything`` seed, epoch, index), so N processes train on
        distinct patches; the loader is a :class:`~attnkit.core.data.resume.ResumableLoader`, so a run resumed
        from any checkpoint, mid-epoch too, trains on the batches of the uninterrupted run.
        """
        pairs = self.load_split("train")
        if self.scale != 1:
            if self._scaled_train is None:
                self._scaled_train = [rescale_pair(p, self.scale) for p in pairs]
            pairs = self._scaled_train
        ds = PatchDataset(pairs, self.patch_size, self.samples_per_epoch,
                          self.augmentation, self.mean, self.std, seed=global_seed())
        sampler = PatchSampler(ds)
        return ResumableLoader(ds, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                               drop_last=len(sampler) >= self.batch_size, persistent_workers=self.num_workers > 0)

    def _whole(self, pairs: list[SegmentationPair]) -> DataLoader[Any]:
        ds = ImageDataset(pairs, self.mean, self.std, scale=self.scale)
        # each image exactly once across processes (Lightning's default sampler pads with repeats, which
        # would count some images twice in the per-image metrics)
        sampler = eval_sampler(ds)
        return DataLoader(ds, batch_size=1, shuffle=False, sampler=sampler, num_workers=self.num_workers,
                          collate_fn=collate_images)

    def val_dataloader(self) -> DataLoader[Any] | list[Any]:
        """Whole validation images (none configured: no validation)."""
        pairs = self.load_split("val")
        return self._whole(pairs) if pairs else []

    def test_dataloader(self) -> DataLoader[Any]:
        """Whole test images."""
        pairs = self.load_split("test")
        if not pairs:
            raise ValueError(f"{type(self).__name__} has no test images configured")
        return self._whole(pairs)

    def predict_dataloader(self) -> DataLoader[Any]:
        """Whole unlabelled images from ``predict_dir``."""
        if self.predict_dir is None:
            raise ValueError("predict needs images: pass --data.predict_dir FOLDER")
        pairs = load_pairs(Path(self.predict_dir), None, num_classes=self.num_classes,
                           in_channels=self.in_channels, intensity=self.intensity)
        return self._whole(pairs)


class _RegisteredDataModule(FolderSegmentationDataModule):
    """A registered dataset: its files live in ``<root>/<dataset_id>/`` and are fetched when missing."""

    dataset_id: str

    @property
    def base_dir(self) -> Path:
        """``<root>/<dataset_id>`` (``root=None``: ``ATTNKIT_DATA_DIR``), fetched when missing or empty."""
        d = dataset_dir(self.dataset_id, self.root)
        return d if d.is_dir() and any(d.iterdir()) else fetch(self.dataset_id, self.root)


class MoNuSegDataModule(_RegisteredDataModule):
    """MoNuSeg 2018 nuclei (H&E, 1000x1000) in the UCTransNet split: 24 train, 6 val, 14 test images.

    Layout under ``<root>/monuseg/``: ``{Train,Val,Test}_Folder/{img,labelcol}`` (test images are TIFF,
    masks binary PNG). ``root=None`` uses ``ATTNKIT_DATA_DIR`` and downloads missing files where the network
    allows. The other arguments are those of :class:`FolderSegmentationDataModule`.
    """

    dataset_id = "monuseg"

    def __init__(
        self,
        root: str | None = None,
        predict_dir: str | None = None,
        patch_size: int = 256,
        samples_per_epoch: int = 192,
        batch_size: int = 4,
        num_workers: int = 0,
        augment: bool = True,
        degrees: float = 0.0,
        elastic_alpha: float = 0.0,
        colour_jitter: float = 0.1,
        scale: float = 1.0,
    ) -> None:
        super().__init__(
            root=root, train_images="Train_Folder/img", train_masks="Train_Folder/labelcol",
            val_images="Val_Folder/img", val_masks="Val_Folder/labelcol", test_images="Test_Folder/img",
            test_masks="Test_Folder/labelcol", predict_dir=predict_dir, num_classes=2, in_channels=3,
            mask_values=[0, 255], patch_size=patch_size, samples_per_epoch=samples_per_epoch,
            batch_size=batch_size, num_workers=num_workers, augment=augment, degrees=degrees,
            elastic_alpha=elastic_alpha, colour_jitter=colour_jitter, scale=scale,
        )


class ISBI2012DataModule(_RegisteredDataModule):
    """ISBI 2012 EM membranes: 30 slices 512x512, k-fold cross-validation (test labels are not public).

    Layout under ``<root>/isbi2012-em/``: ``image/N.png`` and ``label/N.png`` (255 = cell, 0 = membrane).
    Class 1 is the membrane. Slices are split into ``num_folds`` contiguous folds; fold ``fold`` is held out
    and serves as both validation and test set.

    Args:
        root: data root (default ``ATTNKIT_DATA_DIR``).
        fold: held-out fold.
        num_folds: number of folds.
        predict_dir: unlabelled images for ``predict``.
        patch_size: training patch side.
        samples_per_epoch: training patches per epoch.
        batch_size: training batch size.
        num_workers: loader workers.
        augment: flips and rotations.
        degrees: affine rotation range.
        elastic_alpha: elastic deformation strength (the U-Net paper's augmentation).
        scale: resample every image by this factor (see :class:`FolderSegmentationDataModule`).

    """

    dataset_id = "isbi2012-em"

    def __init__(
        self,
        root: str | None = None,
        fold: int = 0,
        num_folds: int = 5,
        predict_dir: str | None = None,
        patch_size: int = 256,
        samples_per_epoch: int = 128,
        batch_size: int = 4,
        num_workers: int = 0,
        augment: bool = True,
        degrees: float = 0.0,
        elastic_alpha: float = 0.0,
        scale: float = 1.0,
    ) -> None:
        if not 0 <= fold < num_folds:
            raise ValueError(f"fold must be in 0..{num_folds - 1}, got {fold}")
        super().__init__(
            root=root, train_images="image", train_masks="label", predict_dir=predict_dir, num_classes=2,
            in_channels=1, mask_values=[255, 0], patch_size=patch_size, samples_per_epoch=samples_per_epoch,
            batch_size=batch_size, num_workers=num_workers, augment=augment, degrees=degrees,
            elastic_alpha=elastic_alpha, scale=scale,
        )
        self.fold, self.num_folds = fold, num_folds

    def load_split(self, split: str) -> list[SegmentationPair]:
        """Train: all folds but ``fold``; val and test: fold ``fold``."""
        if split not in self.splits:
            pairs = sorted(self._load("image", "label"), key=lambda p: (len(p.name), p.name))
            if len(pairs) < self.num_folds:
                raise ValueError(f"{len(pairs)} images cannot be split into {self.num_folds} folds")
            bounds = [round(i * len(pairs) / self.num_folds) for i in range(self.num_folds + 1)]
            held = set(range(bounds[self.fold], bounds[self.fold + 1]))
            self.splits["train"] = [p for i, p in enumerate(pairs) if i not in held]
            self.splits["val"] = self.splits["test"] = [p for i, p in enumerate(pairs) if i in held]
        return self.splits[split]


class DRIVEDataModule(_RegisteredDataModule):
    """DRIVE retinal vessels (Staal et al. 2004): 20 training and 20 test fundus photographs, 565x584 RGB.

    Layout under ``<root>/drive/``, as published: ``{training,test}/images/NN_{training,test}.tif`` (LZW
    TIFF), ``{training,test}/1st_manual/NN_manual1.gif`` (vessels 255) and ``{training,test}/mask/
    NN_{training,test}_mask.gif`` (field of view 255). The standard protocol: train on the 20 training images,
    test on the 20 test images against the first observer, every metric inside the field of view (pixels
    outside it count for neither the loss nor the metrics). DRIVE has no validation split: ``num_val`` holds
    out the last ``num_val`` training images (by number) for validation; 0 validates on nothing.

    Args:
        root: data root (default ``ATTNKIT_DATA_DIR``; missing files are downloaded where the network allows).
        num_val: training images held out for validation (0..19).
        predict_dir: unlabelled images for ``predict``.
        patch_size: training patch side.
        samples_per_epoch: training patches per epoch.
        batch_size: training batch size.
        num_workers: loader workers.
        augment: flips and 90° rotations.
        degrees: affine rotation range.
        elastic_alpha: elastic deformation strength.
        colour_jitter: brightness / contrast / saturation strength.
        scale: resample every image by this factor (see :class:`FolderSegmentationDataModule`).

    """

    dataset_id = "drive"

    def __init__(
        self,
        root: str | None = None,
        num_val: int = 0,
        predict_dir: str | None = None,
        patch_size: int = 256,
        samples_per_epoch: int = 128,
        batch_size: int = 4,
        num_workers: int = 0,
        augment: bool = True,
        degrees: float = 0.0,
        elastic_alpha: float = 0.0,
        colour_jitter: float = 0.1,
        scale: float = 1.0,
    ) -> None:
        if not 0 <= num_val < 20:
            raise ValueError(f"num_val must be in 0..19 (DRIVE has 20 training images), got {num_val}")
        super().__init__(
            root=root, train_images="training/images", train_masks="training/1st_manual",
            train_fov="training/mask", test_images="test/images", test_masks="test/1st_manual",
            test_fov="test/mask", predict_dir=predict_dir, num_classes=2, in_channels=3, mask_values=[0, 255],
            patch_size=patch_size, samples_per_epoch=samples_per_epoch, batch_size=batch_size,
            num_workers=num_workers, augment=augment, degrees=degrees, elastic_alpha=elastic_alpha,
            colour_jitter=colour_jitter, mask_pattern="{id}_manual1.gif", fov_pattern="{stem}_mask.gif",
            id_regex=r"^(\d+)_", scale=scale,
        )
        self.num_val = num_val

    def load_split(self, split: str) -> list[SegmentationPair]:
        """Train: the training images but the last ``num_val``; val: those; test: the 20 test images."""
        if split in ("train", "val") and split not in self.splits:
            pairs = sorted(self._load(*self._dirs["train"], self._fov["train"]), key=lambda p: p.name)
            cut = len(pairs) - self.num_val
            self.splits["train"], self.splits["val"] = pairs[:cut], pairs[cut:]
        return super().load_split(split)


class PH2DataModule(_RegisteredDataModule):
    """PH2 dermoscopic skin lesions (Mendonca et al. 2013): 200 RGB images of ~765x574 with expert lesion masks.

    Layout under ``<root>/ph2/``, as published: ``PH2 Dataset images/IMDnnn/IMDnnn_Dermoscopic_Image/IMDnnn.bmp``
    and ``.../IMDnnn_lesion/IMDnnn_lesion.bmp`` (lesion 255; the release's colour-class and ROI masks are not
    used). PH2 has no official split, so attnkit uses ``num_folds`` interleaved folds: the images sorted by
    number, fold ``k`` holds every ``num_folds``-th one starting at the ``k``-th (5 folds: 40 test images each,
    7-9 melanomas per fold). The other folds train; ``num_val`` of them (the last by number) validate instead.
    Lesions are large (often half the image), so whole-image context matters more than on MoNuSeg or DRIVE.

    Args:
        root: data root (default ``ATTNKIT_DATA_DIR``; missing files are downloaded where the network allows).
        fold: the test fold.
        num_folds: number of folds (at least 2, at most the number of cases).
        num_val: training images held out for validation (0: none).
        predict_dir: unlabelled images for ``predict``.
        patch_size: training patch side.
        samples_per_epoch: training patches per epoch.
        batch_size: training batch size.
        num_workers: loader workers.
        augment: flips and 90° rotations.
        degrees: affine rotation range.
        elastic_alpha: elastic deformation strength.
        colour_jitter: brightness / contrast / saturation strength.
        scale: resample every image by this factor, e.g. ``0.45`` for ~344x258 images of which a 256 patch
            holds three quarters (see :class:`FolderSegmentationDataModule`; metrics stay at the original
            resolution).

    """

    dataset_id = "ph2"
    images_dir = "PH2 Dataset images"

    def __init__(
        self,
        root: str | None = None,
        fold: int = 0,
        num_folds: int = 5,
        num_val: int = 0,
        predict_dir: str | None = None,
        patch_size: int = 256,
        samples_per_epoch: int = 128,
        batch_size: int = 4,
        num_workers: int = 0,
        augment: bool = True,
        degrees: float = 0.0,
        elastic_alpha: float = 0.0,
        colour_jitter: float = 0.1,
        scale: float = 1.0,
    ) -> None:
        if num_folds < 2:
            raise ValueError(f"num_folds must be >= 2, got {num_folds}")
        if not 0 <= fold < num_folds:
            raise ValueError(f"fold must be in 0..{num_folds - 1}, got {fold}")
        if num_val < 0:
            raise ValueError(f"num_val must be >= 0, got {num_val}")
        super().__init__(
            # images and lesion masks share the case folders under images_dir (paired by load_split)
            root=root, train_images=self.images_dir, train_masks=self.images_dir, predict_dir=predict_dir,
            num_classes=2, in_channels=3, mask_values=[0, 255], patch_size=patch_size,
            samples_per_epoch=samples_per_epoch, batch_size=batch_size, num_workers=num_workers, augment=augment,
            degrees=degrees, elastic_alpha=elastic_alpha, colour_jitter=colour_jitter, scale=scale,
        )
        self.fold, self.num_folds, self.num_val = fold, num_folds, num_val

    def _cases(self) -> list[tuple[Path, Path, None]]:
        """(image, lesion mask, no field of view) per case folder, sorted by case number."""
        top = self.base_dir / self.images_dir
        if not top.is_dir():
            raise ImageFormatError(f"{top} is missing: PH2's layout is ph2/{self.images_dir}/IMDnnn/... as in the "
                                   "release (see PH2DataModule); point --data.root at the folder that holds ph2/")
        cases = []
        for case in sorted(d for d in top.iterdir() if d.is_dir()):
            image = case / f"{case.name}_Dermoscopic_Image" / f"{case.name}.bmp"
            mask = case / f"{case.name}_lesion" / f"{case.name}_lesion.bmp"
            for what, f in (("image", image), ("lesion mask", mask)):
                if not f.is_file():
                    raise ImageFormatError(f"PH2 case {case} has no {what} {f.relative_to(case)}; restore it from "
                                           "the release (attnkit's fetch('ph2') checks every file)")
            cases.append((image, mask, None))
        if len(cases) < self.num_folds:
            raise ValueError(f"{len(cases)} PH2 cases under {top} cannot be split into {self.num_folds} folds")
        return cases

    def load_split(self, split: str) -> list[SegmentationPair]:
        """Test: fold ``fold``; train: the other folds but the last ``num_val`` images; val: those."""
        if split not in self.splits:
            cases = self._cases()
            test = [c for i, c in enumerate(cases) if i % self.num_folds == self.fold]
            rest = [c for i, c in enumerate(cases) if i % self.num_folds != self.fold]
            if self.num_val >= len(rest):
                raise ValueError(f"num_val={self.num_val} leaves no training images ({len(rest)} outside the "
                                 "test fold)")
            cut = len(rest) - self.num_val
            chosen = {"train": rest[:cut], "val": rest[cut:], "test": test}[split]
            self.splits[split] = load_files(chosen, num_classes=self.num_classes, mask_values=self.mask_values,
                                            in_channels=self.in_channels, ignore_value=self.ignore_value,
                                            intensity=self.intensity)
        return self.splits[split]
