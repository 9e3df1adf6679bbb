"""Training patches are a pure function of (seed, epoch, index); PatchSampler splits an epoch across ranks."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.utilities.warnings import PossibleUserWarning

from attnkit.core.checkpoint import RunCheckpoint
from attnkit.core.data.resume import ResumableLoader
from attnkit.core.tasks import EMAWeights
from attnkit.vision import MoNuSegDataModule
from attnkit.vision.data.augment import SegmentationAugment
from attnkit.vision.data.datasets import PatchDataset, PatchSampler

from .conftest import make_monuseg


@pytest.fixture
def patches(tmp_path: Path) -> PatchDataset:
    make_monuseg(tmp_path / "data")
    pairs = MoNuSegDataModule(root=str(tmp_path / "data")).load_split("train")
    return PatchDataset(pairs, 32, 9, SegmentationAugment(degrees=10.0, brightness=0.1), seed=7)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])


def test_patch_is_a_function_of_seed_epoch_and_index(patches: PatchDataset) -> None:
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = patches[(2, 5)]
    assert torch.equal(torch.get_rng_state(), state), "drawing a patch moved the global random state"
    torch.manual_seed(123)  # the global state does not matter
    assert _same(patches[(2, 5)], first)
    assert not _same(patches[(2, 6)], first)
    assert not _same(patches[(3, 5)], first)
    patches.set_epoch(2)
    assert _same(patches[5], first)
    patches.seed = 8
    assert not _same(patches[(2, 5)], first)


@pytest.mark.parametrize("n", [8, 9])
def test_sampler_shares_are_disjoint_and_cover_the_epoch(patches: PatchDataset, n: int) -> None:
    patches.samples_per_epoch = n
    shares = [PatchSampler(patches, num_replicas=2, rank=r) for r in (0, 1)]
    for s in shares:
        s.set_epoch(4)
    got = [list(s) for s in shares]
    assert [len(g) for g in got] == [len(s) for s in shares] == [(n + 1) // 2] * 2
    assert all(epoch == 4 for g in got for epoch, _ in g)
    idx = [{i for _, i in g} for g in got]
    assert not idx[0] & idx[1]
    assert idx[0] | idx[1] >= set(range(n))  # an odd epoch gets one fresh extra patch, not a repeat
    single = PatchSampler(patches, num_replicas=1, rank=0)
    single.set_epoch(4)
    assert {i for _, i in single} == set(range(n))


class _Seen(pl.LightningModule):
    """A one-parameter model that keeps a fingerprint of every training batch, in order (saved in checkpoints)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[float] = []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.seen.append(float(batch["image"].double().sum()))
        return (self.w - batch["image"].mean()) ** 2

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["seen"] = list(self.seen)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.seen = list(checkpoint["seen"])


def _train(root: Path, where: Path, stops: list[int], workers: int, ema: bool) -> _Seen:
    """Train to each step in ``stops`` in turn, each time in a new Trainer resuming from ``last.ckpt``.

    ``ema``: with ``EMAWeights``, which has ``last.ckpt`` written again when training ends (mid-epoch here).
    """
    model = _Seen()
    for steps in stops:
        pl.seed_everything(11)
        # 6 patches of 32 px, batch 2: 3 batches per epoch (every stop below but 6 and 9 is mid-epoch)
        dm = MoNuSegDataModule(root=str(root), patch_size=32, samples_per_epoch=6, batch_size=2,
                               num_workers=workers)
        last = where / "last.ckpt"
        trainer = pl.Trainer(accelerator="cpu", max_steps=steps, max_epochs=-1, logger=False, limit_val_batches=0,
                             enable_progress_bar=False, enable_model_summary=False, default_root_dir=where,
                             callbacks=[*([EMAWeights(decay=0.5)] if ema else []),
                                        RunCheckpoint(dirpath=str(where), every_n_train_steps=1)])
        with warnings.catch_warnings():
            warnings.simplefilter("error", PossibleUserWarning)  # "resuming ... dataloader is not resumable"
            warnings.filterwarnings("ignore", message=".*(num_workers|does not have many workers).*")
            trainer.fit(model, datamodule=dm, ckpt_path=str(last) if last.exists() else None)
        assert trainer.global_step == steps
    return model


@pytest.mark.parametrize(("workers", "ema"), [(0, False), (1, False), (0, True)])
def test_a_run_resumed_mid_epoch_trains_on_the_batches_of_an_uninterrupted_one(tmp_path: Path, workers: int,
                                                                             ema: bool) -> None:
    make_monuseg(tmp_path / "data")
    whole = _train(tmp_path / "data", tmp_path / "whole", [11], workers, ema)
    resumed = _train(tmp_path / "data", tmp_path / "resumed", [2, 4, 6, 7, 11], workers, ema)
    assert len(whole.seen) == 11 and len(set(whole.seen)) == 11
    assert resumed.seen == whole.seen
    torch.testing.assert_close(resumed.w, whole.w, rtol=0, atol=0)


def test_resumable_loader_refuses_a_sampler_it_cannot_skip(patches: PatchDataset) -> None:
    with pytest.raises(TypeError, match="PatchSampler"):
        ResumableLoader(patches, batch_size=2)
