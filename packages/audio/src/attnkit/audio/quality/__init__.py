"""attnkit.audio.quality: NISQA speech quality prediction (model, converter, features, data, task)."""

from attnkit.audio.quality import registry as _registry  # noqa: F401  (registers the datasets)
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
