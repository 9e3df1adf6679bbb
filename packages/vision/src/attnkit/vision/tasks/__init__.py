"""Lightning tasks."""

from typing import TYPE_CHECKING

from attnkit.core._lazy import lazy_exports

if TYPE_CHECKING:
    from attnkit.vision.tasks.segmentation import SegmentationTask, overlay

__getattr__, __dir__ = lazy_exports(__name__, {
    "SegmentationTask": "attnkit.vision.tasks.segmentation:SegmentationTask",
    "overlay": "attnkit.vision.tasks.segmentation:overlay",
})

__all__ = ["SegmentationTask", "overlay"]
