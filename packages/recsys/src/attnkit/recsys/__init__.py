"""attnkit.recsys: SASRec (Kang & McAuley 2018) for sequential recommendation."""

from attnkit.recsys.data import (
    LeaveOneOut,
    SequenceData,
    SequentialDataModule,
    leave_one_out,
    read_interactions_table,
    read_movielens,
    read_sasrec_txt,
    read_user_sequences,
)
from attnkit.recsys.metrics import RankingMetrics
from attnkit.recsys.models import SASRec, SASRecScorer, sasrec_ml1m, sasrec_paper
from attnkit.recsys.tasks import NextItemTask, TopKWriter

__all__ = [
    "LeaveOneOut",
    "NextItemTask",
    "RankingMetrics",
    "SASRec",
    "SASRecScorer",
    "SequenceData",
    "SequentialDataModule",
    "TopKWriter",
    "leave_one_out",
    "read_interactions_table",
    "read_movielens",
    "read_sasrec_txt",
    "read_user_sequences",
    "sasrec_ml1m",
    "sasrec_paper",
]
