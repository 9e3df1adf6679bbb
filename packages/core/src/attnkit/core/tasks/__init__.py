"""attnkit's Lightning tasks: the :class:`Task` base every domain task subclasses, and the demonstration task
(sequence classification on generated data, which exercises the CLI, checkpoints, resume and DDP without any
dataset download).
"""

from typing import TYPE_CHECKING

from attnkit.core._lazy import lazy_exports
from attnkit.core.tasks import model_registry as _model_registry  # noqa: F401  (registers the demo model)

if TYPE_CHECKING:
    from attnkit.core.tasks.averaging import EMAWeights
    from attnkit.core.tasks.base import PredictionWriter, Task, write_table
    from attnkit.core.tasks.batch_norm import PreciseBatchNorm, recalibrate_batch_norm
    from attnkit.core.tasks.clipping import ClipGradients
    from attnkit.core.tasks.optim import WarmupConstantLR, WarmupCosineLR
    from attnkit.core.tasks.sequence_classification import (
        SequenceClassificationTask,
        SequenceClassifier,
        SyntheticSequenceDataModule,
    )

__getattr__, __dir__ = lazy_exports(__name__, {
    "ClipGradients": "attnkit.core.tasks.clipping:ClipGradients",
    "EMAWeights": "attnkit.core.tasks.averaging:EMAWeights",
    "PredictionWriter": "attnkit.core.tasks.base:PredictionWriter",
    "PreciseBatchNorm": "attnkit.core.tasks.batch_norm:PreciseBatchNorm",
    "recalibrate_batch_norm": "attnkit.core.tasks.batch_norm:recalibrate_batch_norm",
    "Task": "attnkit.core.tasks.base:Task",
    "write_table": "attnkit.core.tasks.base:write_table",
    "WarmupConstantLR": "attnkit.core.tasks.optim:WarmupConstantLR",
    "WarmupCosineLR": "attnkit.core.tasks.optim:WarmupCosineLR",
    "SequenceClassificationTask": "attnkit.core.tasks.sequence_classification:SequenceClassificationTask",
    "SequenceClassifier": "attnkit.core.tasks.sequence_classification:SequenceClassifier",
    "SyntheticSequenceDataModule": "attnkit.core.tasks.sequence_classification:SyntheticSequenceDataModule",
})

__all__ = [
    "ClipGradients",
    "EMAWeights",
    "PreciseBatchNorm",
    "PredictionWriter",
    "SequenceClassificationTask",
    "SequenceClassifier",
    "SyntheticSequenceDataModule",
    "Task",
    "WarmupConstantLR",
    "WarmupCosineLR",
    "recalibrate_batch_norm",
    "write_table",
]
