"""attnkit.vision."""
