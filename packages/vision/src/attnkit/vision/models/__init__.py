"""Pure PyTorch segmentation models (no Lightning)."""

from typing import TYPE_CHECKING

from attnkit.core._lazy import lazy_exports

if TYPE_CHECKING:
    from attnkit.vision.models.encoders import (
        EncoderWeightsUnavailableError,
        build_encoder,
        find_pretrained_weights,
        load_encoder_weights,
    )
    from attnkit.vision.models.msga import GuidedAttentionModule, MSGANet, SegmentationOutput
    from attnkit.vision.models.transdae import TransDAE
    from attnkit.vision.models.utransformer import UTransformer

__getattr__, __dir__ = lazy_exports(__name__, {
    "EncoderWeightsUnavailableError": "attnkit.vision.models.encoders:EncoderWeightsUnavailableError",
    "build_encoder": "attnkit.vision.models.encoders:build_encoder",
    "find_pretrained_weights": "attnkit.vision.models.encoders:find_pretrained_weights",
    "load_encoder_weights": "attnkit.vision.models.encoders:load_encoder_weights",
    "GuidedAttentionModule": "attnkit.vision.models.msga:GuidedAttentionModule",
    "MSGANet": "attnkit.vision.models.msga:MSGANet",
    "SegmentationOutput": "attnkit.vision.models.msga:SegmentationOutput",
    "TransDAE": "attnkit.vision.models.transdae:TransDAE",
    "UTransformer": "attnkit.vision.models.utransformer:UTransformer",
})

__all__ = [
    "EncoderWeightsUnavailableError",
    "GuidedAttentionModule",
    "MSGANet",
    "SegmentationOutput",
    "TransDAE",
    "UTransformer",
    "build_encoder",
    "find_pretrained_weights",
    "load_encoder_weights",
]
