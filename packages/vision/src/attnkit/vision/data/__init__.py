"""Image/mask readers, augmentations, datasets and data modules."""

from attnkit.vision.data.augment import SegmentationAugment
from attnkit.vision.data.datamodule import FolderSegmentationDataModule, ISBI2012DataModule, MoNuSegDataModule
from attnkit.vision.data.datasets import ImageDataset, PatchDataset, normalise
from attnkit.vision.data.formats import ImageFormatError, list_images, load_pairs, read_image
from attnkit.vision.data.registry import ISBI2012, MONUSEG

__all__ = [
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
    "read_image",
]
