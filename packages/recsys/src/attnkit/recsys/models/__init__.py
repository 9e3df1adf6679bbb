
from typing import TYPE_CHECKING

from attnkit.core._lazy import lazy_exports

if TYPE_CHECKING:
    from attnkit.recsys.models.sasrec import SASRec, SASRecBlock, SASRecScorer, sasrec_ml1m, sasrec_paper

__getattr__, __dir__ = lazy_exports(__name__, {
    "SASRec": "attnkit.recsys.models.sasrec:SASRec",
    "SASRecBlock": "attnkit.recsys.models.sasrec:SASRecBlock",
    "SASRecScorer": "attnkit.recsys.models.sasrec:SASRecScorer",
    "sasrec_ml1m": "attnkit.recsys.models.sasrec:sasrec_ml1m",
    "sasrec_paper": "attnkit.recsys.models.sasrec:sasrec_paper",
})

__all__ = ["SASRec", "SASRecBlock", "SASRecScorer", "sasrec_ml1m", "sasrec_paper"]
