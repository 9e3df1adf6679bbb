"""Lightning tasks."""

from typing import TYPE_CHECKING

from attnkit.core._lazy import lazy_exports

if TYPE_CHECKING:
    from attnkit.timeseries.tasks.imputation import ImputationTask, masked_mae

__getattr__, __dir__ = lazy_exports(__name__, {
    "ImputationTask": "attnkit.timeseries.tasks.imputation:ImputationTask",
    "masked_mae": "attnkit.timeseries.tasks.imputation:masked_mae",
})

__all__ = ["ImputationTask", "masked_mae"]
