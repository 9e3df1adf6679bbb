"""Image/mask readers, augmentations, datasets and data modules."""

from attnkit.vision.data.augment import SegmentationAugment
from attnkit.vision.data.datamodule import FolderSegmentationDataModule, ISBI2012DataModule, MoNuSegDataModule
from attnkit.vision.data.datasets import ImageDataset, PatchDataset, normalise
from attnkit.vision.data.formats import (
    IGNORE_INDEX,
    ImageFormatError,
    list_images,
    load_pairs,
    pair_files,
    read_image,
    read_pair_list,
)
from attnkit.vision.data.registry import ISBI2012, MONUSEG

__all__ = [
    "IGNORE_INDEX",
    "ISBI2012",
    "MONUSEG",
    "FolderSegmentationDataModule",
    "ISBI2012DataModule",
    "ImageDataset",
    "ImageFormatError",
    "MoNuSegDataModule",
    "PatchDataset",
    "SegmentationAugment",
    "list_images",
    "load_pairs",
    "normalise",
    "pair_files",
    "read_image",
    "read_pair_list",
]
