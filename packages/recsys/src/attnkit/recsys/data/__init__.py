from attnkit.recsys.data import registry as _registry  # noqa: F401  (registers the datasets)
from attnkit.recsys.data.datamodule import SequentialDataModule, left_pad
from attnkit.recsys.data.formats import (
    SequenceData,
    read_interactions_table,
    read_movielens,
    read_sasrec_txt,
    read_user_sequences,
)
from attnkit.recsys.data.split import LeaveOneOut, leave_one_out

__all__ = [
    "LeaveOneOut",
    "SequenceData",
    "SequentialDataModule",
    "leave_one_out",
    "left_pad",
    "read_interactions_table",
    "read_movielens",
    "read_sasrec_txt",
    "read_user_sequences",
]
