
from typing import TYPE_CHECKING

from attnkit.core._lazy import lazy_exports
from attnkit.recsys.data import registry as _registry  # noqa: F401  (registers the datasets)

if TYPE_CHECKING:
    from attnkit.recsys.data.datamodule import SequentialDataModule, left_pad
    from attnkit.recsys.data.formats import (
        SequenceData,
        read_interactions_table,
        read_movielens,
        read_negatives_file,
        read_sasrec_txt,
        read_user_sequences,
    )
    from attnkit.recsys.data.source import resolve_dataset, sniff_format
    from attnkit.recsys.data.split import LeaveOneOut, leave_one_out

__getattr__, __dir__ = lazy_exports(__name__, {
    "SequentialDataModule": "attnkit.recsys.data.datamodule:SequentialDataModule",
    "left_pad": "attnkit.recsys.data.datamodule:left_pad",
    "SequenceData": "attnkit.recsys.data.formats:SequenceData",
    "read_interactions_table": "attnkit.recsys.data.formats:read_interactions_table",
    "read_movielens": "attnkit.recsys.data.formats:read_movielens",
    "read_negatives_file": "attnkit.recsys.data.formats:read_negatives_file",
    "read_sasrec_txt": "attnkit.recsys.data.formats:read_sasrec_txt",
    "resolve_dataset": "attnkit.recsys.data.source:resolve_dataset",
    "sniff_format": "attnkit.recsys.data.source:sniff_format",
    "read_user_sequences": "attnkit.recsys.data.formats:read_user_sequences",
    "LeaveOneOut": "attnkit.recsys.data.split:LeaveOneOut",
    "leave_one_out": "attnkit.recsys.data.split:leave_one_out",
})

__all__ = [
    "LeaveOneOut",
    "SequenceData",
    "SequentialDataModule",
    "leave_one_out",
    "left_pad",
    "read_interactions_table",
    "read_movielens",
    "read_negatives_file",
    "read_sasrec_txt",
    "read_user_sequences",
    "resolve_dataset",
    "sniff_format",
]
