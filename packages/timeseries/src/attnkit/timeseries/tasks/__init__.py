"""Lightning tasks."""

from attnkit.timeseries.tasks.imputation import ImputationTask, masked_mae

__all__ = ["ImputationTask", "masked_mae"]
