"""attnkit.recsys: SASRec (Kang & McAuley 2018) for sequential recommendation."""

from typing import TYPE_CHECKING

from attnkit.core._lazy import lazy_exports
from attnkit.recsys.data import registry as _registry  # noqa: F401  (registers the datasets)
from attnkit.recsys.models import registry as _model_registry  # noqa: F401  (registers the models)

if TYPE_CHECKING:
    from attnkit.core.models import load_model
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

__getattr__, __dir__ = lazy_exports(__name__, {
    "load_model": "attnkit.core.models:load_model",
    "LeaveOneOut": "attnkit.recsys.data:LeaveOneOut",
    "SequenceData": "attnkit.recsys.data:SequenceData",
    "SequentialDataModule": "attnkit.recsys.data:SequentialDataModule",
    "leave_one_out": "attnkit.recsys.data:leave_one_out",
    "read_interactions_table": "attnkit.recsys.data:read_interactions_table",
    "read_movielens": "attnkit.recsys.data:read_movielens",
    "read_sasrec_txt": "attnkit.recsys.data:read_sasrec_txt",
    "read_user_sequences": "attnkit.recsys.data:read_user_sequences",
    "RankingMetrics": "attnkit.recsys.metrics:RankingMetrics",
    "SASRec": "attnkit.recsys.models:SASRec",
    "SASRecScorer": "attnkit.recsys.models:SASRecScorer",
    "sasrec_ml1m": "attnkit.recsys.models:sasrec_ml1m",
    "sasrec_paper": "attnkit.recsys.models:sasrec_paper",
    "NextItemTask": "attnkit.recsys.tasks:NextItemTask",
    "TopKWriter": "attnkit.recsys.tasks:TopKWriter",
})

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
    "load_model",
    "read_interactions_table",
    "read_movielens",
    "read_sasrec_txt",
    "read_user_sequences",
    "sasrec_ml1m",
    "sasrec_paper",
]
