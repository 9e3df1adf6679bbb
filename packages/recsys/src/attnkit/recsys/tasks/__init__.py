
from typing import TYPE_CHECKING

from attnkit.core._lazy import lazy_exports

if TYPE_CHECKING:
    from attnkit.recsys.tasks.next_item import NextItemTask, full_ranking_scores
    from attnkit.recsys.tasks.writer import TopKWriter

__getattr__, __dir__ = lazy_exports(__name__, {
    "NextItemTask": "attnkit.recsys.tasks.next_item:NextItemTask",
    "full_ranking_scores": "attnkit.recsys.tasks.next_item:full_ranking_scores",
    "TopKWriter": "attnkit.recsys.tasks.writer:TopKWriter",
})

__all__ = ["NextItemTask", "TopKWriter", "full_ranking_scores"]
