"""Training patches are a pure function of (seed, epoch, index); PatchSampler splits an epoch across ranks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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
