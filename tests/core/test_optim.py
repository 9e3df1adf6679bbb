"""The shared configure_optimizers body."""

from __future__ import annotations

import itertools
import math
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from attnkit.core.tasks.optim import build_optimization


def test_optimizer_alone_without_scheduler() -> None:
    params = list(nn.Linear(2, 2).parameters())
    out = build_optimization(params, partial(torch.optim.SGD, lr=0.1))
    assert isinstance(out, torch.optim.SGD)


def test_plateau_scheduler_gets_the_monitored_metric() -> None:
    params = list(nn.Linear(2, 2).parameters())
    out = build_optimization(params, partial(torch.optim.SGD, lr=0.1),
                             partial(torch.optim.lr_scheduler.ReduceLROnPlateau, mode="max"), "val/acc")
    assert isinstance(out["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert out["lr_scheduler"]["monitor"] == "val/acc"
    assert out["lr_scheduler"]["scheduler"].optimizer is out["optimizer"]


def test_warmup_cosine_shape() -> None:
    from attnkit.core.tasks import WarmupCosineLR

    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.5)
    sched = WarmupCosineLR(opt, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    lrs = []
    for _ in range(16):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.125, 0.25, 0.375, 0.5])  # linear warm-up to the peak
    assert lrs[4] == pytest.approx(0.5)
    assert all(a > b for a, b in itertools.pairwise(lrs[4:15]))  # strictly decreasing cosine
    assert lrs[9] == pytest.approx(0.05 + 0.45 * 0.5)  # half-way: floor + half the range
    assert lrs[14] == pytest.approx(0.05) and lrs[15] == pytest.approx(0.05)  # stays at the floor


def test_warmup_constant_warms_up_then_keeps_the_peak_and_resumes_to_any_length(tmp_path: Path) -> None:
    """Per group, linear to each group's peak, then flat; through Lightning it is stepped per optimiser step, and a
    run resumed to a longer budget continues at the peak (nothing depends on the length of training)."""
    import lightning.pytorch as pl

    from attnkit.core.tasks import (
        SequenceClassificationTask,
        SequenceClassifier,
        SyntheticSequenceDataModule,
        WarmupConstantLR,
    )

    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    opt = torch.optim.SGD([{"params": a.parameters(), "lr": 0.4}, {"params": b.parameters(), "lr": 0.04}])
    sched = WarmupConstantLR(opt, warmup_steps=4)
    lrs = []
    for _ in range(7):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert [g[0] for g in lrs] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4, 0.4])
    assert [g[1] for g in lrs] == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.04, 0.04, 0.04])
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        WarmupConstantLR(opt, warmup_steps=-1)
    flat = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.3)
    WarmupConstantLR(flat)
    assert flat.param_groups[0]["lr"] == pytest.approx(0.3)  # no warm-up: the peak from the first step

    seen: list[float] = []

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    def run(max_steps: int, ckpt_path: str | None) -> pl.Trainer:
        task = SequenceClassificationTask(SequenceClassifier(32, 4, embed_dim=16, num_layers=1),
                                          optimizer=partial(torch.optim.Adam, lr=0.01),
                                          scheduler=partial(WarmupConstantLR, warmup_steps=4))
        trainer = pl.Trainer(max_steps=max_steps, limit_val_batches=0, logger=False, enable_progress_bar=False,
                             enable_model_summary=False, callbacks=[Record()], default_root_dir=tmp_path)
        trainer.fit(task, SyntheticSequenceDataModule(num_samples=64, batch_size=16), ckpt_path=ckpt_path)
        return trainer

    first = run(3, None)
    first.save_checkpoint(tmp_path / "three.ckpt")
    run(8, str(tmp_path / "three.ckpt"))
    assert seen == pytest.approx([0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01, 0.01, 0.01])


def test_warmup_cosine_rejects_bad_lengths() -> None:
    from attnkit.core.tasks import WarmupCosineLR

    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.5)
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupCosineLR(opt, warmup_steps=10, total_steps=10)
    sched = WarmupCosineLR(opt, warmup_steps=10)
    with pytest.raises(ValueError, match="finite training length"):
        sched.set_total_steps(float("inf"))


def test_warmup_cosine_is_stepped_per_step_over_the_trainers_length(tmp_path: Path) -> None:
    """Through a task and Lightning: the cosine spans exactly the steps the trainer runs, ending at the floor."""
    import lightning.pytorch as pl

    from attnkit.core.tasks import (
        SequenceClassificationTask,
        SequenceClassifier,
        SyntheticSequenceDataModule,
        WarmupCosineLR,
    )

    seen: list[float] = []

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    task = SequenceClassificationTask(SequenceClassifier(32, 4, embed_dim=16, num_layers=1),
                                      optimizer=partial(torch.optim.Adam, lr=0.01),
                                      scheduler=partial(WarmupCosineLR, warmup_steps=2, min_lr_ratio=0.0))
    trainer = pl.Trainer(max_epochs=3, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()],
                         default_root_dir=tmp_path)
    trainer.fit(task, SyntheticSequenceDataModule(num_samples=64, batch_size=16))
    assert len(seen) == 12  # 4 steps per epoch x 3 epochs
    assert seen[:3] == pytest.approx([0.005, 0.01, 0.01])
    assert seen[-1] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 9 / 10)))  # last step before the floor
    assert trainer.lr_scheduler_configs[0].scheduler.total_steps == 12
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_warmup_cosine_shrinks_the_warmup_of_a_short_debugging_run() -> None:
    from attnkit.core.tasks import WarmupCosineLR

    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.5)
    sched = WarmupCosineLR(opt, warmup_steps=240)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 / 240)
    with pytest.warns(UserWarning, match="warming up over 2 steps"):
        sched.set_total_steps(20)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)  # step 0 of a 2-step warm-up
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)


def test_build_optimization_asks_the_length_only_of_a_schedule_that_needs_it() -> None:
    from attnkit.core.tasks import WarmupCosineLR

    asked: list[int] = []

    def length() -> int:
        asked.append(1)
        return 50

    params = list(nn.Linear(2, 2).parameters())
    out = build_optimization(params, partial(torch.optim.SGD, lr=0.1), partial(WarmupCosineLR, warmup_steps=5),
                             total_steps=length)
    assert out["lr_scheduler"]["scheduler"].total_steps == 50 and out["lr_scheduler"]["interval"] == "step"
    fixed = build_optimization(params, partial(torch.optim.SGD, lr=0.1),
                               partial(WarmupCosineLR, warmup_steps=5, total_steps=20), total_steps=length)
    assert fixed["lr_scheduler"]["scheduler"].total_steps == 20
    plateau = build_optimization(params, partial(torch.optim.SGD, lr=0.1),
                                 torch.optim.lr_scheduler.ReduceLROnPlateau, "val/loss", total_steps=length)
    assert plateau["lr_scheduler"]["interval"] == "epoch"
    assert asked == [1]  # only the first schedule asked for the length


def test_warmup_cosine_warns_when_resumed_into_a_run_of_another_length() -> None:
    import warnings

    from attnkit.core.tasks import WarmupCosineLR

    def saved_after(steps: int, total: int) -> dict:
        opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.5)
        sched = WarmupCosineLR(opt)
        sched.set_total_steps(total)
        for _ in range(steps):
            opt.step()
            sched.step()
        return sched.state_dict()

    state = saved_after(10, 10)  # a finished 10-step run: at its floor
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.5)
    longer = WarmupCosineLR(opt)
    longer.set_total_steps(30)  # what the task sets for the resumed run, before Lightning restores the state
    with pytest.warns(UserWarning, match="spans 10 steps but this run trains 30"):
        longer.load_state_dict(state)
    assert longer.total_steps == 10 and longer.get_lr()[0] == pytest.approx(0.0)  # the saved cosine is kept

    same = WarmupCosineLR(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.5))
    same.set_total_steps(10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an interrupted run resumed with its own length: no warning
        same.load_state_dict(saved_after(4, 10))
    assert same.total_steps == 10
