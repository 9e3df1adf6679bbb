from __future__ import annotations

import numpy as np
import pytest
import torch

from attnkit.timeseries.masking import block_mask, hide, mcar_mask, mcar_mask_exact, subsequence_mask
from attnkit.timeseries.metrics import MaskedMAE, MaskedMRE, MaskedRMSE


@pytest.fixture
def observed() -> torch.Tensor:
    return torch.rand(64, 48, 10, generator=torch.Generator().manual_seed(0)) > 0.5


def test_mcar_rate_only_observed_and_seeded(observed: torch.Tensor) -> None:
    h = mcar_mask(observed, 0.2, torch.Generator().manual_seed(1))
    assert not (h & ~observed).any()
    assert abs(h.sum().item() / observed.sum().item() - 0.2) < 0.02
    assert torch.equal(h, mcar_mask(observed, 0.2, torch.Generator().manual_seed(1)))
    assert not torch.equal(h, mcar_mask(observed, 0.2, torch.Generator().manual_seed(2)))


def test_mcar_exact_count(observed: torch.Tensor) -> None:
    h = mcar_mask_exact(observed, 0.1, torch.Generator().manual_seed(0))
    assert h.sum().item() == round(0.1 * observed.sum().item())
    assert not (h & ~observed).any()


def test_block_and_subsequence_shapes(observed: torch.Tensor) -> None:
    full = torch.ones_like(observed)
    s = subsequence_mask(full, 0.25, torch.Generator().manual_seed(0))
    assert (s.sum(1) == 12).all()  # one run of 12 steps per series and feature
    runs = s.int().diff(dim=1).clamp_min(0).sum(1)
    assert (runs <= 1).all()
    b = block_mask(full, 0.2, generator=torch.Generator().manual_seed(0))
    assert 0.1 < b.float().mean() < 0.3
    assert not (block_mask(observed, 0.2) & ~observed).any()
    with pytest.raises(ValueError, match="unknown missingness"):
        hide(observed, 0.2, "weird")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        mcar_mask(observed, 1.5)


def test_metrics_match_numpy() -> None:
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(4, 6, 3)), rng.normal(size=(4, 6, 3))
    m = rng.random((4, 6, 3)) < 0.3
    mae, rmse, mre = MaskedMAE(), MaskedRMSE(), MaskedMRE()
    for metric in (mae, rmse, mre):  # two updates accumulate like one
        metric.update(torch.tensor(p[:2]), torch.tensor(t[:2]), torch.tensor(m[:2]))
        metric.update(torch.tensor(p[2:]), torch.tensor(t[2:]), torch.tensor(m[2:]))
    e = (p - t)[m]
    assert mae.compute().item() == pytest.approx(np.abs(e).mean())
    assert rmse.compute().item() == pytest.approx(np.sqrt((e**2).mean()))
    assert mre.compute().item() == pytest.approx(np.abs(e).sum() / np.abs(t[m]).sum())
    with pytest.raises(ValueError, match="must match"):
        mae.update(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 2))
