"""The demonstration task of attnkit.core: sequence classification on generated data.

It exercises the whole machinery (CLI, checkpoints, resume, DDP) without any dataset download.
"""

from attnkit.core.tasks.sequence_classification import (
    SequenceClassificationTask,
    SequenceClassifier,
    SyntheticSequenceDataModule,
)

__all__ = ["SequenceClassificationTask", "SequenceClassifier", "SyntheticSequenceDataModule"]
