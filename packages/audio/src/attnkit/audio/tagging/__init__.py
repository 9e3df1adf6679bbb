"""attnkit.audio.tagging: self-attention music tagging (Won et al. 2019) and a short-chunk CNN baseline."""

from attnkit.audio.tagging import registry as _registry  # noqa: F401  (registers mtat, tagging-scores)
from attnkit.audio.tagging.cnn import ShortChunkCNN, short_chunk_cnn_paper, short_chunk_cnn_small
from attnkit.audio.tagging.data import MusicTaggingDataModule
from attnkit.audio.tagging.formats import MTAT_TOP50, TagFileError, TaggedClip
from attnkit.audio.tagging.metrics import TagAUC
from attnkit.audio.tagging.model import SelfAttentionTagger, won2019_paper, won2019_small
from attnkit.audio.tagging.task import MusicTaggingTask, load_tagger

__all__ = [
    "MTAT_TOP50",
    "MusicTaggingDataModule",
    "MusicTaggingTask",
    "SelfAttentionTagger",
    "ShortChunkCNN",
    "TagAUC",
    "TagFileError",
    "TaggedClip",
    "load_tagger",
    "short_chunk_cnn_paper",
    "short_chunk_cnn_small",
    "won2019_paper",
    "won2019_small",
]
