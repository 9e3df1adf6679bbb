"""attnkit.audio.tagging: self-attention music tagging (Won et al. 2019) and a short-chunk CNN baseline."""

from typing import TYPE_CHECKING

from attnkit.audio.tagging import registry as _registry  # noqa: F401  (registers mtat, tagging-scores)
from attnkit.core._lazy import lazy_exports

if TYPE_CHECKING:
    from attnkit.audio.tagging.cnn import ShortChunkCNN, short_chunk_cnn_paper, short_chunk_cnn_small
    from attnkit.audio.tagging.data import MusicTaggingDataModule
    from attnkit.audio.tagging.formats import MTAT_TOP50, TagFileError, TaggedClip
    from attnkit.audio.tagging.metrics import TagAUC
    from attnkit.audio.tagging.model import SelfAttentionTagger, won2019_paper, won2019_small
    from attnkit.audio.tagging.task import MusicTaggingTask, load_tagger

__getattr__, __dir__ = lazy_exports(__name__, {
    "ShortChunkCNN": "attnkit.audio.tagging.cnn:ShortChunkCNN",
    "short_chunk_cnn_paper": "attnkit.audio.tagging.cnn:short_chunk_cnn_paper",
    "short_chunk_cnn_small": "attnkit.audio.tagging.cnn:short_chunk_cnn_small",
    "MusicTaggingDataModule": "attnkit.audio.tagging.data:MusicTaggingDataModule",
    "MTAT_TOP50": "attnkit.audio.tagging.formats:MTAT_TOP50",
    "TagFileError": "attnkit.audio.tagging.formats:TagFileError",
    "TaggedClip": "attnkit.audio.tagging.formats:TaggedClip",
    "TagAUC": "attnkit.audio.tagging.metrics:TagAUC",
    "SelfAttentionTagger": "attnkit.audio.tagging.model:SelfAttentionTagger",
    "won2019_paper": "attnkit.audio.tagging.model:won2019_paper",
    "won2019_small": "attnkit.audio.tagging.model:won2019_small",
    "MusicTaggingTask": "attnkit.audio.tagging.task:MusicTaggingTask",
    "load_tagger": "attnkit.audio.tagging.task:load_tagger",
})

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
