"""RunCheckpoint and AtomicCheckpointIO without the CLI."""

from __future__ import annotations

import warnings
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


def _fit(tmp_path: Path, ckpt: RunCheckpoint, max_steps: int, ckpt_path: str | None = None) -> pl.Trainer:
    trainer = pl.Trainer(max_steps=max_steps, val_check_interval=2, check_val_every_n_epoch=None, callbacks=[ckpt],
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         plugins=[AtomicCheckpointIO()], default_root_dir=str(tmp_path), limit_val_batches=2)
    dm = SyntheticSequenceDataModule(num_samples=256, batch_size=32)
    trainer.fit(SequenceClassificationTask(SequenceClassifier(32, 4)), dm, ckpt_path=ckpt_path)
    return trainer


def test_resume_with_another_save_frequency_keeps_the_best_score(tmp_path: Path) -> None:
    first = RunCheckpoint(dirpath=str(tmp_path / "ckpt"), monitor="val/acc", mode="max", every_n_train_steps=2)
    _fit(tmp_path, first, max_steps=4)
    assert first.best_model_score is not None
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["callbacks"]
    assert len(saved) == 1

    resumed = RunCheckpoint(dirpath=str(tmp_path / "ckpt"), monitor="val/acc", mode="max", every_n_train_steps=3)
    restored: list[object] = []

    class _Probe(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            restored.append(resumed.best_model_score)

    trainer = pl.Trainer(max_steps=6, callbacks=[resumed, _Probe()], logger=False, enable_progress_bar=False,
                         enable_model_summary=False, plugins=[AtomicCheckpointIO()], limit_val_batches=2,
                         default_root_dir=str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(SequenceClassificationTask(SequenceClassifier(32, 4)),
                    SyntheticSequenceDataModule(num_samples=256, batch_size=32),
                    ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert restored and restored[0] == first.best_model_score  # the first run's best, not reset
    assert not [w for w in caught if "callbacks used to create the checkpoint" in str(w.message)]


def test_state_saved_under_lightnings_longer_key_is_still_found(tmp_path: Path) -> None:
    first = RunCheckpoint(dirpath=str(tmp_path / "ckpt"), monitor="val/acc", mode="max", every_n_train_steps=2)
    _fit(tmp_path, first, max_steps=4)
    path = tmp_path / "ckpt" / "last.ckpt"
    ckpt = torch.load(path, weights_only=True)
    (state,) = ckpt["callbacks"].values()
    ckpt["callbacks"] = {"RunCheckpoint{'monitor': 'val/acc', 'mode': 'max', 'every_n_train_steps': 2, "
                         "'every_n_epochs': None, 'train_time_interval': None}": state}
    torch.save(ckpt, path)
    resumed = RunCheckpoint(dirpath=str(tmp_path / "ckpt"), monitor="val/acc", mode="max", every_n_train_steps=2)
    resumed.on_load_checkpoint(None, None, ckpt)  # type: ignore[arg-type]
    resumed.load_state_dict(ckpt["callbacks"][resumed.state_key])
    assert resumed.best_model_score == first.best_model_score
