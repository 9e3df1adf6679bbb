"""SpeechQualityTask: trains a quality model on per-dimension MSE, reports PCC and RMSE per dimension."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.regression import MeanSquaredError, PearsonCorrCoef

from attnkit.core.tasks.base import Task

__all__ = ["SpeechQualityTask"]


class SpeechQualityTask(Task):
    """Regression of quality scores (MOS and dimensions) from padded log-mel segments.

    Args:
        model: maps ``(segments (B, L, 1, M, S), lengths (B,))`` to ``(B, K)``; its ``output_names`` (linked
            from the data module's ``score_columns``) name the targets.
        loss: ``"mse"`` (the original NISQA training) or ``"l1"``, averaged over all outputs.
        baselines: at test, also log two constant predictors on the same test files
            (:func:`~attnkit.audio.quality.baselines.quality_baselines`): ``test/baseline_train_mean/rmse_<name>``
            and ``test/baseline_dataset_mean/{rmse,pcc}_<name>``.
        optimizer: builds the optimiser from the parameters.
        scheduler: optional learning-rate scheduler (monitored on ``val/loss`` for ReduceLROnPlateau).

    Logged: ``{stage}/loss``, ``{stage}/pcc_<name>`` and ``{stage}/rmse_<name>`` for every output.

    """

    monitor: ClassVar[str] = "val/pcc_mos"
    monitor_mode: ClassVar[Literal["min", "max"]] = "max"
    cli_links: ClassVar[dict[str, str]] = {"score_columns": "model.init_args.output_names"}
    scheduler_monitor: ClassVar[str | None] = "val/loss"

    def __init__(
        self,
        model: nn.Module,
        loss: Literal["mse", "l1"] = "mse",
        baselines: bool = False,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(model, optimizer, scheduler)
        if loss not in ("mse", "l1"):
            raise ValueError(f"loss must be 'mse' or 'l1', got {loss!r}")
        self.loss_name = loss
        self.baselines = baselines
        self.names: tuple[str, ...] = tuple(getattr(model, "output_names", ("mos",)))
        k = len(self.names)
        # a metric object (sum of losses and of samples across processes): exact under DDP, where
        # `sync_dist` averages counts in integers and does not split uneven shares exactly
        self.metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict(
                    {
                        "pcc": PearsonCorrCoef(num_outputs=k) if k > 1 else PearsonCorrCoef(),
                        "rmse": MeanSquaredError(squared=False, num_outputs=k),
                    }
                )
                for stage in ("val", "test")
            }
        )

    def forward(self, segments: Tensor, lengths: Tensor) -> Tensor:
        """``(B, L, 1, M, S), (B,) -> (B, K)``."""
        return self.model(segments, lengths)

    def _loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        pred = self(batch["segments"], batch["lengths"])
        target = batch["target"]
        if pred.shape != target.shape:
            raise ValueError(
                f"model outputs {tuple(pred.shape)} ({self.names}) but targets are "
                f"{tuple(target.shape)}; the model's output_names must match the data's score_columns"
            )
        fn = F.mse_loss if self.loss_name == "mse" else F.l1_loss
        return fn(pred, target), pred, target

    def forward_batch(self, batch: dict[str, Tensor]) -> Tensor:
        """Predictions ``(B, K)`` on a training batch (for :class:`~attnkit.core.tasks.PreciseBatchNorm`)."""
        return self(batch["segments"], batch["lengths"])

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:  # noqa: D102
        loss, _, _ = self._loss(batch)
        self.log_loss("train", loss, batch["target"].shape[0])
        return loss

    def _eval(self, batch: dict[str, Tensor], stage: str) -> None:
        loss, pred, target = self._loss(batch)
        self.log_loss(stage, loss, target.shape[0])
        if len(self.names) == 1:
            pred, target = pred[:, 0], target[:, 0]
        for metric in self._metrics(stage):
            metric.update(pred.float(), target.float())

    def _metrics(self, stage: str) -> tuple[Metric, Metric]:
        group = self.metrics[stage]
        assert isinstance(group, nn.ModuleDict)
        pcc_m, rmse_m = group["pcc"], group["rmse"]
        assert isinstance(pcc_m, Metric) and isinstance(rmse_m, Metric)
        return pcc_m, rmse_m

    def _eval_end(self, stage: str) -> None:
        pcc_m, rmse_m = self._metrics(stage)
        pcc, rmse = pcc_m.compute().reshape(-1), rmse_m.compute().reshape(-1)
        for i, name in enumerate(self.names):
            self.log(f"{stage}/pcc_{name}", pcc[i], prog_bar=stage == "val" and name == "mos")
            self.log(f"{stage}/rmse_{name}", rmse[i])
        pcc_m.reset()
        rmse_m.reset()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._eval(batch, "val")

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        self._eval_end("val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._eval(batch, "test")

    def on_test_epoch_end(self) -> None:  # noqa: D102
        self._eval_end("test")
        dm = getattr(self.trainer, "datamodule", None)
        if not self.baselines or dm is None or not getattr(dm, "splits", None):
            return
        from attnkit.audio.quality.baselines import quality_baselines

        test = dm.splits["test"]
        res = quality_baselines(dm.splits["train"].scores, test.scores, getattr(test, "groups", None))
        for key, values in res.items():
            base, metric = key.split("/")
            for i, name in enumerate(self.names):
                if not torch.isnan(values[i]):
                    self.log(f"test/baseline_{base}/{metric}_{name}", values[i])

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Predicted scores ``(B, K)``, one column per output name (``predictions.csv``)."""
        pred = self(batch["segments"], batch["lengths"]).float()
        return {name: pred[:, i] for i, name in enumerate(self.names)}

    def checkpoint_metadata(self) -> dict[str, Any]:
        """The feature settings of the data, so that ``attnkit-audio quality --weights`` scores files alike."""
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        features = getattr(dm, "features", None)
        if features is None or not dataclasses.is_dataclass(features):
            return {}
        values = {f.name: getattr(features, f.name) for f in dataclasses.fields(features) if f.name != "stft_dtype"}
        return {"features": values}
