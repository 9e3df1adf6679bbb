"""Registry entries of the audio models (listed by ``attnkit models``)."""

from __future__ import annotations

from typing import Any

from attnkit.core.models import ModelInfo, register_model


def _segments() -> tuple[Any, ...]:
    import torch

    return torch.randn(2, 12, 1, 48, 15), torch.tensor([12, 7])


def _nisqa() -> tuple[Any, tuple[Any, ...]]:
    from attnkit.audio.quality.model import NISQA

    return NISQA(), _segments()


def _nisqa_tts() -> tuple[Any, tuple[Any, ...]]:
    from attnkit.audio.quality.model_tts import NISQATTS

    return NISQATTS(), _segments()


def _wav() -> tuple[Any, ...]:
    import torch

    return (torch.randn(2, 16000) * 0.1,)


def _tagger() -> tuple[Any, tuple[Any, ...]]:
    from attnkit.audio.tagging.model import SelfAttentionTagger

    model = SelfAttentionTagger(num_tags=5, n_mels=32, channels=(8, 8, 16, 16, 16, 16, 16), embed_dim=16,
                                num_heads=2, num_layers=1)
    return model, _wav()


def _cnn() -> tuple[Any, tuple[Any, ...]]:
    from attnkit.audio.tagging.cnn import ShortChunkCNN

    return ShortChunkCNN(num_tags=5, n_mels=32, channels=(8, 8, 8, 8, 8, 8, 8)), _wav()


register_model(ModelInfo(
    name="nisqa", class_path="attnkit.audio.NISQA", domain="audio",
    paper="Mittag et al., NISQA: A Deep CNN-Self-Attention Model for Multidimensional Speech Quality Prediction "
          "with Crowdsourced Datasets, Interspeech 2021", config="nisqa-corpus", example=f"{__name__}:_nisqa",
    export=(),
))
register_model(ModelInfo(
    name="nisqa-tts", class_path="attnkit.audio.NISQATTS", domain="audio",
    paper="Mittag & Moller, Deep Learning Based Assessment of Synthetic Speech Naturalness, Interspeech 2020",
    example=f"{__name__}:_nisqa_tts", export=(),
))
register_model(ModelInfo(
    name="won2019", class_path="attnkit.audio.SelfAttentionTagger", domain="audio",
    paper="Won, Chun & Serra, Toward Interpretable Music Tagging with Self-Attention, 2019",
    config="tagging-mtat", example=f"{__name__}:_tagger", export=(),
))
register_model(ModelInfo(
    name="short-chunk-cnn", class_path="attnkit.audio.ShortChunkCNN", domain="audio",
    paper="Won et al., Evaluation of CNN-based Automatic Music Tagging Models, SMC 2020 (the baseline)",
    config="tagging-mtat-cnn", example=f"{__name__}:_cnn", export=(),
))
