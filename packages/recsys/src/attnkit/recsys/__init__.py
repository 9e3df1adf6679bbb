"""attnkit.recsys."""
