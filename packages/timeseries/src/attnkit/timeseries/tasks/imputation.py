"""ImputationTask: trains SAITS with the observed reconstruction (ORT) and masked imputation (MIT) tasks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torchmetrics import Metric

from attnkit.core.tasks.base import Task
from attnkit.timeseries.baselines import BASELINES, baseline_imputations, training_median
from attnkit.timeseries.masking import MissingPattern, hide
from attnkit.timeseries.metrics import MaskedMAE, MaskedMRE, MaskedRMSE

__all__ = ["ImputationTask", "masked_mae"]


def masked_mae(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``sum(|pred - target| * mask) / (sum(mask) + 1e-12)`` (the SAITS loss)."""
    m = mask.to(pred.dtype)
    return ((pred - target).abs() * m).sum() / (m.sum() + 1e-12)


class ImputationTask(Task):
    """Trains an imputation model (SAITS) as in the paper: ORT + MIT, metrics on held-out values.

    Each training batch hides ``mit_rate`` of the observed values on the device (per batch, pattern
    ``mit_pattern``). The loss is ``ort_weight * mean_k MAE(x_tilde_k, x, observed) + mit_weight *
    MAE(x_tilde_3, x, hidden)``. Validation/test feed the series with the data module's seeded hold-out
    hidden and report MAE, RMSE and MRE on the held-out values, standardised (``mae``) and on the original
    scale (``mae_orig``).

    Args:
        model: a :class:`~attnkit.timeseries.SAITS` (or any module with the same forward contract).
        mit_rate: fraction of observed training values hidden for MIT (the paper: 0.2).
        mit_pattern: ``"mcar"``, ``"block"`` or ``"subseq"``.
        ort_weight: weight of the observed reconstruction loss.
        mit_weight: weight of the masked imputation loss.
        predict_output: CSV that ``attnkit predict`` writes (relative paths go under ``<run>/predictions/``).
        baselines: at test, also impute the same held-out values with the training mean, the training median
            (per feature) and LOCF (last observation carried forward within the window), logged as
            ``test/baseline_<mean|median|locf>/<mae|rmse|mre|mae_orig>`` next to the model's metrics.
        optimizer: builds the optimiser.
        scheduler: optional LR scheduler.
    """

    monitor: ClassVar[str] = "val/mae"
    monitor_mode: ClassVar[Literal["min", "max"]] = "min"
    cli_links: ClassVar[dict[str, str]] = {
        "num_features": "model.init_args.num_features",
        "num_steps": "model.init_args.num_steps",
    }

    def __init__(
        self,
        model: nn.Module,
        mit_rate: float = 0.2,
        mit_pattern: MissingPattern = "mcar",
        ort_weight: float = 1.0,
        mit_weight: float = 1.0,
        predict_output: str = "imputed.csv",
        baselines: bool = False,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(model, optimizer, scheduler)
        if not 0.0 < mit_rate < 1.0:
            raise ValueError(f"mit_rate must be in (0, 1), got {mit_rate}")
        self.mit_rate, self.mit_pattern = mit_rate, mit_pattern
        self.ort_weight, self.mit_weight = ort_weight, mit_weight
        self.predict_output = predict_output
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{name}{suffix}": cls()
                for stage in ("val", "test")
                for name, cls in (("mae", MaskedMAE), ("rmse", MaskedRMSE), ("mre", MaskedMRE))
                for suffix in ("", "_orig")
            }
        )
        self._pred: list[tuple[np.ndarray, np.ndarray]] = []
        self.baselines = baselines
        self.baseline_metrics = nn.ModuleDict(
            {f"{b}_{name}": cls() for b in BASELINES
             for name, cls in (("mae", MaskedMAE), ("rmse", MaskedRMSE), ("mre", MaskedMRE), ("mae_orig", MaskedMAE))}
        )
        self._median: Tensor | None = None

    # -- data statistics -----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Copy the data module's training mean/std into the model (saved with checkpoints)."""
        super().setup(stage)
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(self.model, "set_scaler"):
            dm.setup(stage)
            if dm.num_features != getattr(self.model, "num_features", dm.num_features):
                raise ValueError(
                    f"the model expects {self.model.num_features} features but the data has {dm.num_features}; "
                    "rebuild the model for this data (the CLI links num_features automatically)"
                )
            if stage == "fit":
                self.model.set_scaler(torch.as_tensor(dm.mean), torch.as_tensor(dm.std))  # type: ignore[operator]

    # -- resuming ------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Save the random state the training masks are drawn from, so a resumed run draws the same masks."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["mit_rng_state"] = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            checkpoint["mit_rng_state"]["cuda"] = torch.cuda.get_rng_state(self.device)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the random state of :meth:`on_save_checkpoint` (absent in older checkpoints)."""
        state = checkpoint.get("mit_rng_state")
        if state is None:
            return
        torch.set_rng_state(state["cpu"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"], self.device if self.device.type == "cuda" else "cuda")

    # -- steps ---------------------------------------------------------------------------------------
    def forward(self, x: Tensor, missing_mask: Tensor) -> Any:
        """Run the model: ``x (B, L, F)``, ``missing_mask (B, L, F)`` 1 = observed."""
        return self.model(x, missing_mask)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:  # noqa: D102
        x = batch["x"]
        observed = ~torch.isnan(x)
        x0 = torch.nan_to_num(x)
        hidden = hide(observed, self.mit_rate, self.mit_pattern)
        given = observed & ~hidden
        out = self.model(x0, given.to(x0.dtype))
        ort = torch.stack([masked_mae(e, x0, given) for e in out.estimates]).mean()
        mit = masked_mae(out.x_tilde_3, x0, hidden)
        loss = self.ort_weight * ort + self.mit_weight * mit
        n = x.shape[0]
        self.log_loss("train", loss, n)
        self.log_dict({"train/ort": ort, "train/mit": mit}, batch_size=n)
        return loss

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        x, held = batch["x"], batch["holdout"]
        observed = ~torch.isnan(x)
        given = observed & ~held
        x0 = torch.nan_to_num(x)
        out = self.model(torch.where(given, x0, torch.zeros_like(x0)), given.to(x0.dtype))
        pred = out.x_tilde_3
        std = cast(Tensor, self.model.feature_std).to(pred.dtype)
        mean = cast(Tensor, self.model.feature_mean).to(pred.dtype)
        n = x.shape[0]
        for name in ("mae", "rmse", "mre"):
            m = cast(Metric, self.metrics[f"{stage}_{name}"])
            m.update(pred, x0, held)
            self.log(f"{stage}/{name}", m, batch_size=n, prog_bar=name == "mae")
            mo = cast(Metric, self.metrics[f"{stage}_{name}_orig"])
            mo.update(pred * std + mean, x0 * std + mean, held)
            self.log(f"{stage}/{name}_orig", mo, batch_size=n)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._evaluate(batch, "test")
        if self.baselines:
            self._evaluate_baselines(batch)

    def _evaluate_baselines(self, batch: dict[str, Tensor]) -> None:
        x, held = batch["x"], batch["holdout"]
        x0 = torch.nan_to_num(x)
        given = torch.where(held, torch.full_like(x, float("nan")), x)
        std = cast(Tensor, self.model.feature_std).to(x.dtype)
        mean = cast(Tensor, self.model.feature_mean).to(x.dtype)
        for b, pred in baseline_imputations(given, self._median).items():
            for name in ("mae", "rmse", "mre", "mae_orig"):
                m = cast(Metric, self.baseline_metrics[f"{b}_{name}"])
                if name == "mae_orig":
                    m.update(pred * std + mean, x0 * std + mean, held)
                else:
                    m.update(pred, x0, held)
                self.log(f"test/baseline_{b}/{name}", m, batch_size=x.shape[0])

    def on_test_start(self) -> None:
        """Say which protocol the test follows; with ``baselines``, take the training median from the data."""
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "protocol"):
            rank_zero_info(f"attnkit test protocol -- {dm.protocol}")
        self._median = None
        if self.baselines and dm is not None and hasattr(dm, "splits"):
            med = training_median(dm.splits.train)
            std = cast(Tensor, self.model.feature_std).double().cpu().numpy()
            mean = cast(Tensor, self.model.feature_mean).double().cpu().numpy()
            self._median = torch.as_tensor((med - mean) / std, dtype=torch.float32, device=self.device)

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        x = batch["x"]
        observed = ~torch.isnan(x)
        out = self.model(torch.nan_to_num(x), observed.to(x.dtype))
        self._pred.append((out.imputation.detach().cpu().numpy(), batch["origin"].cpu().numpy()))
        return None  # the windows are kept in self._pred and stitched by write_predictions

    def on_predict_epoch_start(self) -> None:  # noqa: D102
        self._pred = []

    def write_predictions(self, predictions: Sequence[Any], directory: Path, suffix: str = "") -> list[Path]:
        """Stitch the windows and write the imputed table (original scale) through the data module.

        ``predict_output`` is relative to ``directory`` (``<run>/predictions/``). Under DDP every process
        predicted its own share of the windows; rank 0 gathers them and writes one file.
        """
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None or not hasattr(dm, "write_predictions"):
            return []
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            shares: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(shares, self._pred)
            if not self.trainer.is_global_zero:
                return []
            self._pred = [p for share in shares for p in share]
        if not self._pred:
            return []
        imputed = np.concatenate([p for p, _ in self._pred])
        origin = np.concatenate([o for _, o in self._pred])
        path = Path(self.predict_output)
        if not path.is_absolute():
            path = directory / path
        dm.write_predictions(imputed, origin, path)
        return [path]
