"""RunCheckpoint and AtomicCheckpointIO without the CLI."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch

from attnkit.core.checkpoint import AtomicCheckpointIO, RunCheckpoint
from attnkit.core.tasks import SequenceClassificationTask, SequenceClassifier, SyntheticSequenceDataModule


class _Spy(pl.Callback):
    def __init__(self, path: Path) -> None:
        self.path, self.seen = path, []

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if self.path.is_file():
            self.seen.append(torch.load(self.path, weights_only=True)["global_step"])


def test_last_checkpoint_is_written_mid_run_before_any_validation(tmp_path: Path) -> None:
    ckpt = RunCheckpoint(dirpath=str(tmp_path / "ckpt"), monitor="val/acc", mode="max", every_n_train_steps=2)
    spy = _Spy(tmp_path / "ckpt" / "last.ckpt")
    trainer = pl.Trainer(max_steps=6, limit_val_batches=0, callbacks=[ckpt, spy], logger=False,
                         enable_progress_bar=False, enable_model_summary=False, plugins=[AtomicCheckpointIO()],
                         default_root_dir=str(tmp_path))
    dm = SyntheticSequenceDataModule(num_samples=256, batch_size=32)
    trainer.fit(SequenceClassificationTask(SequenceClassifier(32, 4)), dm)
    assert 2 in spy.seen and 4 in spy.seen  # saved at the step triggers, not only at the end
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["global_step"] == 6
    assert not list((tmp_path / "ckpt").glob(".*.tmp"))
