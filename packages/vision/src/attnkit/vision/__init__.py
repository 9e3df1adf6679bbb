"""attnkit.vision: attention U-Nets for medical image segmentation.

Models (pure ``nn.Module``): :class:`UTransformer`, :class:`MSGANet`, :class:`TransDAE`; smp ``Unet`` /
``UnetPlusPlus`` work as baselines in the same :class:`SegmentationTask`. Data: folder datasets, MoNuSeg and
ISBI 2012 EM.
"""

from attnkit.vision.data import (
    FolderSegmentationDataModule,
    ImageFormatError,
    ISBI2012DataModule,
    MoNuSegDataModule,
    SegmentationAugment,
    load_pairs,
    read_image,
)
from attnkit.vision.inference import sliding_window_inference
from attnkit.vision.losses import SegmentationLoss
from attnkit.vision.metrics import HausdorffDistance95, PerImageDice, PerImageIoU, PixelAUPRC, PixelAUROC
from attnkit.vision.models import (
    GuidedAttentionModule,
    MSGANet,
    SegmentationOutput,
    TransDAE,
    UTransformer,
    build_encoder,
    load_encoder_weights,
)
from attnkit.vision.tasks import SegmentationTask
from attnkit.vision.writers import write_segmentation

__all__ = [
    "FolderSegmentationDataModule",
    "GuidedAttentionModule",
    "HausdorffDistance95",
    "ISBI2012DataModule",
    "ImageFormatError",
    "MSGANet",
    "MoNuSegDataModule",
    "PerImageDice",
    "PerImageIoU",
    "PixelAUPRC",
    "PixelAUROC",
    "SegmentationAugment",
    "SegmentationLoss",
    "SegmentationOutput",
    "SegmentationTask",
    "TransDAE",
    "UTransformer",
    "build_encoder",
    "load_encoder_weights",
    "load_pairs",
    "read_image",
    "sliding_window_inference",
    "write_segmentation",
]
