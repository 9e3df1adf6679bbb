"""Lightning tasks."""

from attnkit.vision.tasks.segmentation import SegmentationTask, overlay

__all__ = ["SegmentationTask", "overlay"]
