"""recalibrate_batch_norm and PreciseBatchNorm: exact statistics, training left unchanged, checkpoints, DDP."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import Tensor, nn

from attnkit.core.checkpoint import RunCheckpoint
from attnkit.core.tasks import PreciseBatchNorm, Task, recalibrate_batch_norm

sys.path.insert(0, str(Path(__file__).parent))
from bn_task import BNTask, bn_stats, data, loaders, make_model

from bounded_subprocess import run_bounded


def _expected(model: nn.Module, batches: list[Tensor]) -> list[Tensor]:
    """Per batch: batch norms normalise with batch statistics, dropout is off; stats averaged over batches."""
    lin1, bn1, _, _, lin2, _ = model
    sums: list[Tensor] = [torch.zeros(16), torch.zeros(16), torch.zeros(3), torch.zeros(3)]
    for x in batches:
        h = lin1(x)
        hn = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + bn1.eps) * bn1.weight + bn1.bias
        z = lin2(torch.relu(hn))
        for i, t in enumerate((h.mean(0), h.var(0), z.mean(0), z.var(0))):
            sums[i] += t
    return [s / len(batches) for s in sums]


@torch.no_grad()
def test_statistics_are_the_exact_average_over_the_batches_with_dropout_off() -> None:
    torch.manual_seed(0)
    model = make_model().train()
    x = data()[:][0]
    batches = list(x.split(8))  # 12 batches
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    momenta = [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    n = recalibrate_batch_norm(model, batches, num_batches=5)
    assert n == 2
    got = bn_stats(model)
    want = _expected(model, batches[:5])
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
    assert model.training and all(m.training for m in model.modules())
    assert [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm1d)] == momenta
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k
    model.eval()
    recalibrate_batch_norm(model, batches[:2])
    assert not any(m.training for m in model.modules())  # an eval-mode model stays in eval mode


def test_no_batches_is_an_error_and_leaves_the_statistics() -> None:
    model = make_model()
    before = bn_stats(model)
    with pytest.raises(ValueError, match="got no batches"):
        recalibrate_batch_norm(model, [])
    with pytest.raises(ValueError, match="num_batches must be >= 1"):
        recalibrate_batch_norm(model, [torch.zeros(2, 6)], num_batches=0)
    for a, b in zip(before, bn_stats(model), strict=True):
        assert torch.equal(a, b)
    assert recalibrate_batch_norm(nn.Linear(6, 3), [torch.zeros(2, 6)]) == 0  # nothing to do


def _fit(callbacks: list[pl.Callback], tmp: Path, **trainer: object) -> BNTask:
    pl.seed_everything(3)
    task = BNTask(make_model(), lr=0.05)
    train, val = loaders(batch_size=8, shuffle=bool(trainer.pop("shuffle", True)))
    t = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                   default_root_dir=tmp, callbacks=callbacks, **trainer)  # type: ignore[arg-type]
    t.fit(task, train, val)
    return task


def test_callback_changes_only_the_statistics(tmp_path: Path) -> None:
    # shuffled batches, dropout, validation every epoch: the re-estimations draw batches and random numbers
    # of their own, yet the weights end bit-identical to a run without the callback
    common = {"max_epochs": 3, "enable_checkpointing": False}
    plain = _fit([], tmp_path / "a", **common)
    precise = _fit([PreciseBatchNorm(num_batches=4)], tmp_path / "b", **common)
    sp, sq = plain.state_dict(), precise.state_dict()
    for k in sp:
        if "running" in k or "num_batches_tracked" in k:
            continue
        assert torch.equal(sp[k], sq[k]), k
    assert not torch.allclose(sp["model.5.running_mean"], sq["model.5.running_mean"])


def test_last_checkpoint_holds_the_re_estimated_statistics(tmp_path: Path) -> None:
    # no validation, step-based saving: last.ckpt is first written at step 20, before training ends; the
    # callback re-estimates at the end and has it written again
    ckpt = RunCheckpoint(dirpath=str(tmp_path / "ck"), every_n_train_steps=5)
    task = _fit([PreciseBatchNorm(num_batches=6), ckpt], tmp_path, max_steps=20, limit_val_batches=0,
                shuffle=False)
    saved = torch.load(tmp_path / "ck" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 20
    model = make_model()
    model.load_state_dict({k[len("model."):]: v for k, v in saved["state_dict"].items()})
    recalibrate_batch_norm(model, [b[0] for b in loaders(batch_size=8)[0]], num_batches=6)
    for a, b in zip(bn_stats(model), bn_stats(task.model), strict=True):
        torch.testing.assert_close(a, b)
    held = [saved["state_dict"][f"model.{i}.{s}"] for i in (1, 5) for s in ("running_mean", "running_var")]
    for a, b in zip(held, bn_stats(task.model), strict=True):
        torch.testing.assert_close(a, b)


def test_task_without_forward_batch_gets_a_clear_error(tmp_path: Path) -> None:
    class NoForward(BNTask):
        forward_batch = Task.forward_batch

    pl.seed_everything(0)
    t = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                   enable_checkpointing=False, max_steps=2, default_root_dir=tmp_path,
                   callbacks=[PreciseBatchNorm(num_batches=1)])
    train, val = loaders()
    with pytest.raises(NotImplementedError, match="forward_batch"):
        t.fit(NoForward(make_model()), train, val)
    with pytest.raises(ValueError, match="num_batches must be >= 1"):
        PreciseBatchNorm(num_batches=0)


def test_ddp_ranks_average_their_statistics(tmp_path: Path) -> None:
    # 2 processes, no shuffling: rank r reads samples r, r+2, ... in batches of 8 and re-estimates on its own
    # 6 batches. After the all-reduce both ranks hold the average over all 12 batches; without it each would
    # hold its own half's (and DDP's buffer broadcast would leave rank 0's in the checkpoint)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = run_bounded([sys.executable, str(Path(__file__).parent / "bn_task.py"), str(tmp_path), "--devices", "2"],
                       env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for a, b in zip(r0["stats"], r1["stats"], strict=True):
        torch.testing.assert_close(a, b)
    model = make_model()
    model.load_state_dict(r0["state"])
    x = data()[:][0]
    batches = [b for r in (0, 1) for b in x[r::2].split(8)]
    with torch.no_grad():
        want = _expected(model, batches)
    for g, w in zip(r0["stats"], want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


class _EvalShortcut(nn.Module):
    """Skips its batch norm in eval mode (as fused inference paths do) and has one layer it never runs."""

    def __init__(self) -> None:
        super().__init__()
        self.lin, self.bn, self.unused = nn.Linear(6, 4), nn.BatchNorm1d(4), nn.BatchNorm1d(4)

    def forward(self, x: Tensor) -> Tensor:
        h = self.lin(x)
        return self.bn(h) if self.training else h


@torch.no_grad()
def test_models_with_an_eval_shortcut_and_unreached_layers() -> None:
    torch.manual_seed(0)
    model = _EvalShortcut().eval()
    model.unused.running_mean.fill_(7.0)
    x = data()[:][0]
    with pytest.warns(UserWarning, match=r"1 batch-norm layer\(s\) were not run by the forward pass \(unused\)"):
        assert recalibrate_batch_norm(model, x.split(8)) == 2
    h = model.lin(x)
    torch.testing.assert_close(model.bn.running_mean, h.mean(0), rtol=1e-5, atol=1e-5)
    assert torch.equal(model.unused.running_mean, torch.full((4,), 7.0))
    assert int(model.unused.num_batches_tracked) == 0 and not model.training


def test_fresh_loader_keeps_the_loaders_batching() -> None:
    from attnkit.core.tasks.batch_norm import _fresh_loader

    ds = data(24)
    batched = _fresh_loader(torch.utils.data.DataLoader(ds, batch_size=8))
    assert [b[0].shape[0] for b in batched] == [8, 8, 8]
    # without automatic batching the dataset's items are the batches: they must not be re-batched by 1
    whole = _fresh_loader(torch.utils.data.DataLoader([ds[:12][0], ds[12:][0]], batch_size=None))
    assert [tuple(b.shape) for b in whole] == [(12, 6), (12, 6)]
