from attnkit.recsys.models.sasrec import SASRec, SASRecBlock, SASRecScorer, sasrec_ml1m, sasrec_paper

__all__ = ["SASRec", "SASRecBlock", "SASRecScorer", "sasrec_ml1m", "sasrec_paper"]
