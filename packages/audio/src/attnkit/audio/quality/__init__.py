"""attnkit.audio.quality."""

__all__: list[str] = []
