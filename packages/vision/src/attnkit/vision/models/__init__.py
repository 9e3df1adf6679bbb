"""Pure PyTorch segmentation models (no Lightning)."""

from attnkit.vision.models.encoders import build_encoder, load_encoder_weights
from attnkit.vision.models.msga import GuidedAttentionModule, MSGANet, SegmentationOutput
from attnkit.vision.models.transdae import TransDAE
from attnkit.vision.models.utransformer import UTransformer

__all__ = [
    "GuidedAttentionModule",
    "MSGANet",
    "SegmentationOutput",
    "TransDAE",
    "UTransformer",
    "build_encoder",
    "load_encoder_weights",
]
