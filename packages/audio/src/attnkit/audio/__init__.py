"""attnkit.audio: NISQA speech quality prediction and self-attention music tagging."""

from typing import TYPE_CHECKING, Any

from attnkit.audio import model_registry as _model_registry  # noqa: F401  (registers the models)
from attnkit.audio import quality as _quality
from attnkit.audio import tagging as _tagging

if TYPE_CHECKING:
    from attnkit.audio.quality import *  # noqa: F403
    from attnkit.audio.tagging import *  # noqa: F403

__all__ = [*_quality.__all__, *_tagging.__all__]
_OWNER = {**dict.fromkeys(_quality.__all__, _quality), **dict.fromkeys(_tagging.__all__, _tagging)}


def __getattr__(name: str) -> Any:
    owner = _OWNER.get(name)
    if owner is None:
        raise AttributeError(f"module 'attnkit.audio' has no attribute {name!r}")
    value = getattr(owner, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
