"""attnkit.audio: NISQA speech quality prediction and self-attention music tagging."""

from attnkit.audio.quality import *  # noqa: F403
from attnkit.audio.quality import __all__ as _quality_all
from attnkit.audio.tagging import *  # noqa: F403
from attnkit.audio.tagging import __all__ as _tagging_all

__all__ = [*_quality_all, *_tagging_all]
