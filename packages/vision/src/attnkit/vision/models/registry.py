"""Registry entries of the segmentation models (listed by ``attnkit models``)."""

from __future__ import annotations

from typing import Any

from attnkit.core.models import ModelInfo, register_model


def _image() -> Any:
    import torch

    return (torch.randn(1, 3, 64, 64),)


def _utransformer() -> tuple[Any, tuple[Any, ...]]:
    from attnkit.vision.models.utransformer import UTransformer

    return UTransformer("resnet18", decoder_channels=(64, 32, 16, 16, 8), num_heads=2), _image()


def _msganet() -> tuple[Any, tuple[Any, ...]]:
    from attnkit.vision.models.msga import MSGANet

    return MSGANet("resnet18", channels=16), _image()


def _transdae() -> tuple[Any, tuple[Any, ...]]:
    from attnkit.vision.models.transdae import TransDAE

    model = TransDAE(dims=(16, 32, 48, 64), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4),
                     decoder_channels=(48, 32, 16, 16, 8), interaction_dim=16)
    return model, _image()


def _unet() -> tuple[Any, tuple[Any, ...]]:
    import segmentation_models_pytorch as smp

    return smp.Unet("resnet18", encoder_weights=None, classes=2, decoder_channels=(64, 32, 16, 16, 8)), _image()


register_model(ModelInfo(
    name="utransformer", class_path="attnkit.vision.UTransformer", domain="vision",
    paper="Petit et al., U-Net Transformer: Self and Cross Attention for Medical Image Segmentation, MLMI 2021",
    config="utransformer-monuseg", example=f"{__name__}:_utransformer", export=(),
    notes="smp/timm encoders instead of the paper's plain U-Net encoder",
))
register_model(ModelInfo(
    name="msganet", class_path="attnkit.vision.MSGANet", domain="vision",
    paper="Sinha & Dolz, Multi-scale self-guided attention for medical image segmentation, IEEE JBHI 2020",
    config="msga-monuseg", example=f"{__name__}:_msganet", export=(),
    notes="smaller guiding encoder-decoder; multi-head position attention by default (position_attention='danet' "
          "as the paper)",
))
register_model(ModelInfo(
    name="transdae", class_path="attnkit.vision.TransDAE", domain="vision",
    paper="Azad et al., TransDAE: Dual Attention Mechanism in a Hierarchical Transformer for Efficient Medical "
          "Image Segmentation, 2024", config="transdae-monuseg", example=f"{__name__}:_transdae", export=(),
    notes="TransDAE-style: efficient + channel attention blocks with inter-scale interaction",
))
register_model(ModelInfo(
    name="unet", class_path="segmentation_models_pytorch.Unet", domain="vision",
    paper="Ronneberger et al., U-Net, MICCAI 2015 (segmentation-models-pytorch), the baseline",
    config="unet-monuseg", example=f"{__name__}:_unet", export=("torchscript", "onnx"),
))
