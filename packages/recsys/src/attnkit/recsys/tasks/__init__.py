from attnkit.recsys.tasks.next_item import NextItemTask, full_ranking_scores
from attnkit.recsys.tasks.writer import TopKWriter

__all__ = ["NextItemTask", "TopKWriter", "full_ranking_scores"]
