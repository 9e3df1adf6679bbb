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



def _fit(tmp_path: Path, ckpt: RunCheckpoint, max_steps: int, ckpt_path: Path | None = None) -> object:
    """Fit with validation every 2 steps; return ``ckpt.best_model_score`` as training starts (after a resume)."""
    at_start: list[object] = []

    class _Probe(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            at_start.append(ckpt.best_model_score)

    trainer = pl.Trainer(max_steps=max_steps, val_check_interval=2, check_val_every_n_epoch=None,
                         limit_val_batches=2, callbacks=[ckpt, _Probe()], logger=False, enable_progress_bar=False,
                         enable_model_summary=False, plugins=[AtomicCheckpointIO()], default_root_dir=str(tmp_path))
    trainer.fit(SequenceClassificationTask(SequenceClassifier(32, 4)),
                SyntheticSequenceDataModule(num_samples=256, batch_size=32),
                ckpt_path=str(ckpt_path) if ckpt_path else None)
    return at_start[0]


def _checkpoint(tmp_path: Path, every_n_train_steps: int) -> RunCheckpoint:
    return RunCheckpoint(dirpath=str(tmp_path / "ckpt"), monitor="val/acc", mode="max",
                         every_n_train_steps=every_n_train_steps)


def test_resume_with_another_save_frequency_keeps_the_best_score(tmp_path: Path) -> None:
    first = _checkpoint(tmp_path, every_n_train_steps=2)
    _fit(tmp_path, first, max_steps=4)
    assert first.best_model_score is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restored = _fit(tmp_path, _checkpoint(tmp_path, every_n_train_steps=3), max_steps=6,
                        ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert restored == first.best_model_score  # the first run's best, not reset
    assert not [w for w in caught if "callbacks used to create the checkpoint" in str(w.message)]


def test_state_saved_under_lightnings_longer_key_is_still_found(tmp_path: Path) -> None:
    first = _checkpoint(tmp_path, every_n_train_steps=2)
    _fit(tmp_path, first, max_steps=4)
    path = tmp_path / "ckpt" / "last.ckpt"
    ckpt = torch.load(path, weights_only=True)
    (state,) = ckpt["callbacks"].values()
    ckpt["callbacks"] = {"RunCheckpoint{'monitor': 'val/acc', 'mode': 'max', 'every_n_train_steps': 2, "
                         "'every_n_epochs': 0, 'train_time_interval': None}": state}  # as Lightning keyed it
    torch.save(ckpt, path)
    assert _fit(tmp_path, _checkpoint(tmp_path, every_n_train_steps=2), max_steps=6, ckpt_path=path) \
        == first.best_model_score


def test_resume_after_an_epoch_that_ended_training_starts_the_next_epoch(tmp_path: Path) -> None:
    # 4 batches per epoch, no shuffling; saved every 3 steps, so last.ckpt is written again when training ends
    # at step 4, after the epoch's last batch. Resumed to 8 steps, the run must see batches 0-3 again, as an
    # uninterrupted run does (Lightning 2.6 alone ran one extra batch as "batch 4 of epoch 0" first)
    data = SyntheticSequenceDataModule(num_samples=128, batch_size=32, shuffle=False)

    class _Batches(pl.Callback):
        def __init__(self) -> None:
            self.seen: list[tuple[int, int]] = []

        def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: object,
                                 batch_idx: int) -> None:
            self.seen.append((trainer.current_epoch, batch_idx))

    def run(where: Path, stops: list[int]) -> list[tuple[int, int]]:
        spy = _Batches()
        pl.seed_everything(0)
        task = SequenceClassificationTask(SequenceClassifier(32, 4))
        for steps in stops:
            last = where / "last.ckpt"
            trainer = pl.Trainer(max_steps=steps, limit_val_batches=0, logger=False, enable_progress_bar=False,
                                 enable_model_summary=False, plugins=[AtomicCheckpointIO()],
                                 default_root_dir=str(where),
                                 callbacks=[RunCheckpoint(dirpath=str(where), every_n_train_steps=3), spy])
            trainer.fit(task, data, ckpt_path=str(last) if last.exists() else None)
        return spy.seen

    whole = run(tmp_path / "a", [8])
    assert whole == [(e, b) for e in (0, 1) for b in range(4)]
    assert run(tmp_path / "b", [4, 8]) == whole
