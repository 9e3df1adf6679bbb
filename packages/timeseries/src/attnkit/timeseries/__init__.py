"""attnkit.timeseries."""
