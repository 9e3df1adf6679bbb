"""attnkit.audio.tagging."""

__all__: list[str] = []
