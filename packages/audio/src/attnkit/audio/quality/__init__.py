"""attnkit.audio.quality: NISQA speech quality prediction (model, converter, features, data, task)."""

from typing import TYPE_CHECKING

from attnkit.audio.quality import registry as _registry  # noqa: F401  (registers the datasets)
from attnkit.core._lazy import lazy_exports

if TYPE_CHECKING:
    from attnkit.audio.quality.convert import (
        CheckpointError,
        convert_state_dict,
        export_nisqa_checkpoint,
        load_nisqa_checkpoint,
        pretrained_checkpoint,
    )
    from attnkit.audio.quality.data import (
        QualityDataset,
        SimulatedQualityDataModule,
        SpeechQualityDataModule,
        collate_quality,
        read_quality_csv,
    )
    from attnkit.audio.quality.features import AudioTooLongError, AudioTooShortError, NISQAFeatures, pad_segments
    from attnkit.audio.quality.model import DIMENSIONS, NISQA, AdaptCNN, PoolAttFF, nisqa_dim, nisqa_mos_only
    from attnkit.audio.quality.model_tts import NISQATTS
    from attnkit.audio.quality.predict import QualityPrediction, SpeechQualityModel, check_waveform
    from attnkit.audio.quality.simulate import Degradation, generate_corpus, label_degradation
    from attnkit.audio.quality.task import SpeechQualityTask

__getattr__, __dir__ = lazy_exports(__name__, {
    "CheckpointError": "attnkit.audio.quality.convert:CheckpointError",
    "convert_state_dict": "attnkit.audio.quality.convert:convert_state_dict",
    "export_nisqa_checkpoint": "attnkit.audio.quality.convert:export_nisqa_checkpoint",
    "load_nisqa_checkpoint": "attnkit.audio.quality.convert:load_nisqa_checkpoint",
    "pretrained_checkpoint": "attnkit.audio.quality.convert:pretrained_checkpoint",
    "QualityDataset": "attnkit.audio.quality.data:QualityDataset",
    "SimulatedQualityDataModule": "attnkit.audio.quality.data:SimulatedQualityDataModule",
    "SpeechQualityDataModule": "attnkit.audio.quality.data:SpeechQualityDataModule",
    "collate_quality": "attnkit.audio.quality.data:collate_quality",
    "read_quality_csv": "attnkit.audio.quality.data:read_quality_csv",
    "AudioTooLongError": "attnkit.audio.quality.features:AudioTooLongError",
    "AudioTooShortError": "attnkit.audio.quality.features:AudioTooShortError",
    "NISQAFeatures": "attnkit.audio.quality.features:NISQAFeatures",
    "pad_segments": "attnkit.audio.quality.features:pad_segments",
    "DIMENSIONS": "attnkit.audio.quality.model:DIMENSIONS",
    "NISQA": "attnkit.audio.quality.model:NISQA",
    "AdaptCNN": "attnkit.audio.quality.model:AdaptCNN",
    "PoolAttFF": "attnkit.audio.quality.model:PoolAttFF",
    "nisqa_dim": "attnkit.audio.quality.model:nisqa_dim",
    "nisqa_mos_only": "attnkit.audio.quality.model:nisqa_mos_only",
    "NISQATTS": "attnkit.audio.quality.model_tts:NISQATTS",
    "QualityPrediction": "attnkit.audio.quality.predict:QualityPrediction",
    "SpeechQualityModel": "attnkit.audio.quality.predict:SpeechQualityModel",
    "check_waveform": "attnkit.audio.quality.predict:check_waveform",
    "Degradation": "attnkit.audio.quality.simulate:Degradation",
    "generate_corpus": "attnkit.audio.quality.simulate:generate_corpus",
    "label_degradation": "attnkit.audio.quality.simulate:label_degradation",
    "SpeechQualityTask": "attnkit.audio.quality.task:SpeechQualityTask",
})

__all__ = [
    "DIMENSIONS",
    "NISQA",
    "NISQATTS",
    "AdaptCNN",
    "AudioTooLongError",
    "AudioTooShortError",
    "CheckpointError",
    "Degradation",
    "NISQAFeatures",
    "PoolAttFF",
    "QualityDataset",
    "QualityPrediction",
    "SimulatedQualityDataModule",
    "SpeechQualityDataModule",
    "SpeechQualityModel",
    "SpeechQualityTask",
    "check_waveform",
    "collate_quality",
    "convert_state_dict",
    "export_nisqa_checkpoint",
    "generate_corpus",
    "label_degradation",
    "load_nisqa_checkpoint",
    "nisqa_dim",
    "nisqa_mos_only",
    "pad_segments",
    "pretrained_checkpoint",
    "read_quality_csv",
]
