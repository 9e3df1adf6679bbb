"""Image/mask readers, augmentations, datasets and data modules."""

from typing import TYPE_CHECKING

from attnkit.core._lazy import lazy_exports
from attnkit.vision.data import registry  # noqa: F401  (registers the datasets)

if TYPE_CHECKING:
    from attnkit.vision.data.augment import SegmentationAugment
    from attnkit.vision.data.datamodule import (
        DRIVEDataModule,
        FolderSegmentationDataModule,
        ISBI2012DataModule,
        MoNuSegDataModule,
        PH2DataModule,
    )
    from attnkit.vision.data.datasets import ImageDataset, PatchDataset, normalise, rescale_pair
    from attnkit.vision.data.formats import (
        IGNORE_INDEX,
        ImageFormatError,
        list_images,
        load_pairs,
        pair_files,
        read_image,
        read_pair_list,
    )
    from attnkit.vision.data.registry import DRIVE, ISBI2012, MONUSEG, PH2

__getattr__, __dir__ = lazy_exports(__name__, {
    "SegmentationAugment": "attnkit.vision.data.augment:SegmentationAugment",
    "DRIVEDataModule": "attnkit.vision.data.datamodule:DRIVEDataModule",
    "FolderSegmentationDataModule": "attnkit.vision.data.datamodule:FolderSegmentationDataModule",
    "ISBI2012DataModule": "attnkit.vision.data.datamodule:ISBI2012DataModule",
    "MoNuSegDataModule": "attnkit.vision.data.datamodule:MoNuSegDataModule",
    "PH2DataModule": "attnkit.vision.data.datamodule:PH2DataModule",
    "ImageDataset": "attnkit.vision.data.datasets:ImageDataset",
    "PatchDataset": "attnkit.vision.data.datasets:PatchDataset",
    "normalise": "attnkit.vision.data.datasets:normalise",
    "rescale_pair": "attnkit.vision.data.datasets:rescale_pair",
    "IGNORE_INDEX": "attnkit.vision.data.formats:IGNORE_INDEX",
    "ImageFormatError": "attnkit.vision.data.formats:ImageFormatError",
    "list_images": "attnkit.vision.data.formats:list_images",
    "load_pairs": "attnkit.vision.data.formats:load_pairs",
    "pair_files": "attnkit.vision.data.formats:pair_files",
    "read_image": "attnkit.vision.data.formats:read_image",
    "read_pair_list": "attnkit.vision.data.formats:read_pair_list",
    "DRIVE": "attnkit.vision.data.registry:DRIVE",
    "ISBI2012": "attnkit.vision.data.registry:ISBI2012",
    "MONUSEG": "attnkit.vision.data.registry:MONUSEG",
    "PH2": "attnkit.vision.data.registry:PH2",
})

__all__ = [
    "DRIVE",
    "IGNORE_INDEX",
    "ISBI2012",
    "MONUSEG",
    "PH2",
    "DRIVEDataModule",
    "FolderSegmentationDataModule",
    "ISBI2012DataModule",
    "ImageDataset",
    "ImageFormatError",
    "MoNuSegDataModule",
    "PH2DataModule",
    "PatchDataset",
    "SegmentationAugment",
    "list_images",
    "load_pairs",
    "normalise",
    "pair_files",
    "read_image",
    "read_pair_list",
    "rescale_pair",
]
