"""attnkit.vision: attention U-Nets for medical image segmentation.

Models (pure ``nn.Module``): :class:`UTransformer`, :class:`MSGANet`, :class:`TransDAE`; smp ``Unet`` /
``UnetPlusPlus`` work as baselines in the same :class:`SegmentationTask`. Data: folder datasets, MoNuSeg and
ISBI 2012 EM.
"""

from typing import TYPE_CHECKING

from attnkit.core._lazy import lazy_exports
from attnkit.vision.data import registry as _registry  # noqa: F401  (registers the datasets)
from attnkit.vision.models import registry as _model_registry  # noqa: F401  (registers the models)

if TYPE_CHECKING:
    from attnkit.core.models import load_model
    from attnkit.vision.data import (
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
    from attnkit.vision.inference import sliding_window_inference
    from attnkit.vision.losses import SegmentationLoss
    from attnkit.vision.metrics import HausdorffDistance95, PerImageDice, PerImageIoU, PixelAUPRC, PixelAUROC
    from attnkit.vision.models import (
        EncoderWeightsUnavailableError,
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

__getattr__, __dir__ = lazy_exports(__name__, {
    "load_model": "attnkit.core.models:load_model",
    "FolderSegmentationDataModule": "attnkit.vision.data:FolderSegmentationDataModule",
    "ImageFormatError": "attnkit.vision.data:ImageFormatError",
    "DRIVEDataModule": "attnkit.vision.data:DRIVEDataModule",
    "ISBI2012DataModule": "attnkit.vision.data:ISBI2012DataModule",
    "MoNuSegDataModule": "attnkit.vision.data:MoNuSegDataModule",
    "PH2DataModule": "attnkit.vision.data:PH2DataModule",
    "SegmentationAugment": "attnkit.vision.data:SegmentationAugment",
    "load_pairs": "attnkit.vision.data:load_pairs",
    "read_image": "attnkit.vision.data:read_image",
    "sliding_window_inference": "attnkit.vision.inference:sliding_window_inference",
    "SegmentationLoss": "attnkit.vision.losses:SegmentationLoss",
    "HausdorffDistance95": "attnkit.vision.metrics:HausdorffDistance95",
    "PerImageDice": "attnkit.vision.metrics:PerImageDice",
    "PerImageIoU": "attnkit.vision.metrics:PerImageIoU",
    "PixelAUPRC": "attnkit.vision.metrics:PixelAUPRC",
    "PixelAUROC": "attnkit.vision.metrics:PixelAUROC",
    "EncoderWeightsUnavailableError": "attnkit.vision.models:EncoderWeightsUnavailableError",
    "GuidedAttentionModule": "attnkit.vision.models:GuidedAttentionModule",
    "MSGANet": "attnkit.vision.models:MSGANet",
    "SegmentationOutput": "attnkit.vision.models:SegmentationOutput",
    "TransDAE": "attnkit.vision.models:TransDAE",
    "UTransformer": "attnkit.vision.models:UTransformer",
    "build_encoder": "attnkit.vision.models:build_encoder",
    "load_encoder_weights": "attnkit.vision.models:load_encoder_weights",
    "SegmentationTask": "attnkit.vision.tasks:SegmentationTask",
    "write_segmentation": "attnkit.vision.writers:write_segmentation",
})

__all__ = [
    "DRIVEDataModule",
    "EncoderWeightsUnavailableError",
    "FolderSegmentationDataModule",
    "GuidedAttentionModule",
    "HausdorffDistance95",
    "ISBI2012DataModule",
    "ImageFormatError",
    "MSGANet",
    "MoNuSegDataModule",
    "PH2DataModule",
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
    "load_model",
    "load_pairs",
    "read_image",
    "sliding_window_inference",
    "write_segmentation",
]
