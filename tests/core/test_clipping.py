"""ClipGradients: clipping from a given step on, the logged norm, a resumed run, refused settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import Tensor
from torch.optim import Optimizer

from attnkit.core.checkpoint import RunCheckpoint
from attnkit.core.tasks import ClipGradients

sys.path.insert(0, str(Path(__file__).parent))
from bn_task import CLIP_NORM, BNTask, data, loaders, make_model

from bounded_subprocess import run_bounded

LR, MAX_NORM, BATCH = 0.05, 0.05, 48  # two batches per epoch: the resumed run starts at an epoch's start


class _Norms(pl.Callback):
    """The global gradient norm seen just before the optimiser steps, after every callback placed before it."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: Optimizer) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        self.norms.append(float(torch.nn.utils.get_total_norm(grads)))


class _Logged(pl.Callback):
    """What ClipGradients logged at every step."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.values.append(float(trainer.callback_metrics["train/grad_norm"]))


def _task() -> BNTask:
    pl.seed_everything(5)
    model = make_model()
    model[3].p = 0.0  # no dropout: the manual reference below has no RNG to match
    return BNTask(model, lr=LR)


def _trainer(tmp: Path, callbacks: list[pl.Callback], **kw: Any) -> pl.Trainer:
    kw.setdefault("enable_checkpointing", False)
    return pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=tmp, callbacks=callbacks, num_sanity_val_steps=0, limit_val_batches=0, **kw)


def _reference(steps: int, start: int) -> tuple[dict[str, Tensor], list[float], list[float]]:
    """The same training written out: weights at the end, norms before and after clipping at each step."""
    task = _task()
    opt = torch.optim.SGD(task.model.parameters(), lr=LR)
    before, after = [], []
    batches = list(loaders(BATCH)[0])
    for step in range(steps):
        x, y = batches[step % len(batches)]
        opt.zero_grad()
        ((task.model(x) - y) ** 2).mean().backward()
        before.append(float(torch.nn.utils.clip_grad_norm_(task.model.parameters(), float("inf"))))
        if step >= start:
            torch.nn.utils.clip_grad_norm_(task.model.parameters(), MAX_NORM)
        after.append(float(torch.nn.utils.get_total_norm([p.grad for p in task.model.parameters()])))
        opt.step()
    return {k: v.detach() for k, v in task.model.state_dict().items()}, before, after


@pytest.mark.parametrize("start", [0, 3])
def test_steps_from_start_step_on_are_clipped_and_the_norm_is_logged(tmp_path: Path, start: int) -> None:
    steps = 6
    want, before, after = _reference(steps, start)
    assert min(before) > 2 * MAX_NORM  # so clipping changes every step it touches
    task, seen, logged = _task(), _Norms(), _Logged()
    _trainer(tmp_path, [ClipGradients(MAX_NORM, start_step=start), seen, logged], max_steps=steps).fit(
        task, *loaders(BATCH))
    assert seen.norms == pytest.approx(after, rel=1e-5)
    assert seen.norms[start:] == pytest.approx([MAX_NORM] * (steps - start), rel=1e-5)
    assert logged.values == pytest.approx(before, rel=1e-5)
    for k, v in task.model.state_dict().items():
        torch.testing.assert_close(v, want[k], rtol=1e-5, atol=1e-6)


def test_a_resumed_run_clips_by_the_restored_step(tmp_path: Path) -> None:
    want, _, after = _reference(7, 4)
    task, seen = _task(), _Norms()
    last = tmp_path / "last.ckpt"
    for steps in (4, 7):  # stops at an epoch end just before the first clipped step, then resumes
        ck = RunCheckpoint(dirpath=str(tmp_path), every_n_train_steps=1)
        _trainer(tmp_path, [ClipGradients(MAX_NORM, start_step=4), seen, ck], max_steps=steps,
                 enable_checkpointing=True).fit(task, *loaders(BATCH), ckpt_path=str(last) if last.exists() else None)
    assert seen.norms == pytest.approx(after, rel=1e-5)
    for k, v in task.model.state_dict().items():
        torch.testing.assert_close(v, want[k], rtol=1e-5, atol=1e-6)


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        ClipGradients(0.0)
    with pytest.raises(ValueError, match="start_step must be >= 0"):
        ClipGradients(1.0, start_step=-1)
    trainer = _trainer(tmp_path, [ClipGradients(1.0, start_step=10)], max_steps=1, gradient_clip_val=2.0)
    with pytest.raises(ValueError, match="both clip: keep one") as err:
        trainer.fit(_task(), *loaders(BATCH))
    assert "--print_config" in str(err.value)  # how to take it out of a packaged config


def test_ddp_processes_clip_the_averaged_gradients_alike(tmp_path: Path) -> None:
    # 2 processes, rank r reads samples r, r+2, ... in batches of 8: 6 steps per epoch, 3 epochs; clipped from
    # step 7. Reference: the same 18 steps in one process, each on the mean of the two ranks' gradients
    start = 7
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = run_bounded([sys.executable, str(Path(__file__).parent / "bn_task.py"), str(tmp_path), "--devices", "2",
                        "--clip-from", str(start)], env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pl.seed_everything(0)
    model = make_model()
    model[3].p = 0.0
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = data()[:]
    shards = [list(zip(x[r::2].split(8), y[r::2].split(8), strict=True)) for r in (0, 1)]
    for step in range(18):
        opt.zero_grad()
        for shard in shards:
            xb, yb = shard[step % 6]
            (((model(xb) - yb) ** 2).mean() / 2).backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM if step >= start else float("inf"))
        assert norm > 2 * CLIP_NORM
        opt.step()
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True)["state"] for r in (0, 1)]
    for name, want in model.named_parameters():
        torch.testing.assert_close(ranks[0][name], ranks[1][name], rtol=0, atol=0)
        torch.testing.assert_close(ranks[0][name], want.detach(), rtol=1e-5, atol=1e-6)
