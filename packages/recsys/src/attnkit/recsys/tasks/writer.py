"""Prediction writer: the top-k items per user as CSV."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

__all__ = ["TopKWriter", "write_top_k"]


def write_top_k(preds: Sequence[dict[str, Any]], path: Path, datamodule: Any = None) -> Path:
    """Write ``user,rank,item,score`` rows (rank 1 = best) from :meth:`NextItemTask.predict_step` outputs.

    Ids are mapped back to the source file's ids when ``datamodule`` exposes ``user_ids`` / ``item_ids``.
    """
    users = torch.cat([p["user"] for p in preds]).cpu().numpy()
    items = torch.cat([p["items"] for p in preds]).cpu().numpy()
    scores = torch.cat([p["scores"] for p in preds]).float().cpu().numpy()
    uid = getattr(datamodule, "user_ids", None)
    iid = getattr(datamodule, "item_ids", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user", "rank", "item", "score"])
        for row, u in enumerate(users):
            user = uid[u] if uid is not None and len(uid) else u
            for r in range(items.shape[1]):
                it = items[row, r]
                w.writerow([user, r + 1, iid[it] if iid is not None else it, f"{scores[row, r]:.6g}"])
    return path


class TopKWriter(BasePredictionWriter):
    """Writes ``user,rank,item,score`` rows (rank 1 = best) from :meth:`NextItemTask.predict_step`.

    User and item ids are written as they are in the source file (remapped ids are mapped back when the
    DataModule exposes ``user_ids`` / ``item_ids``).

    Args:
        output: CSV path; default ``<trainer.default_root_dir>/predictions.csv``. Under DDP each rank
            writes ``<stem>-rank<r>.csv``.

    """

    def __init__(self, output: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output = output
        self.written: Path | None = None

    def write_on_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           predictions: Sequence[Any], batch_indices: Sequence[Any]) -> None:
        """Write all predictions of the epoch to the CSV file."""
        preds = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        if not preds:
            return
        path = Path(self.output) if self.output else Path(trainer.default_root_dir) / "predictions.csv"
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}-rank{trainer.global_rank}{path.suffix}")
        self.written = write_top_k(list(preds), path, getattr(trainer, "datamodule", None))
