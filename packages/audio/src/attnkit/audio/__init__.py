"""attnkit.audio."""
