"""EMAWeights: the averaging rule, what validation, checkpoints and testing see, exact resume."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import Tensor

from attnkit.core.checkpoint import RunCheckpoint
from attnkit.core.tasks import EMAWeights, PreciseBatchNorm, recalibrate_batch_norm

sys.path.insert(0, str(Path(__file__).parent))
from bn_task import BNTask, bn_stats, loaders, make_model


class _Record(pl.Callback):
    """The trained parameters (``buffers``: also the floating-point buffers) after every optimiser step."""

    def __init__(self, buffers: bool = False) -> None:
        self.weights: list[dict[str, Tensor]] = []
        self.buffers = buffers

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        state = pl_module.state_dict() if self.buffers else dict(pl_module.named_parameters())
        self.weights.append({k: v.detach().clone() for k, v in state.items() if v.is_floating_point()})


class _ValTask(BNTask):
    """Keeps a copy of its state at every validation step."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[dict[str, Tensor]] = []

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if batch_idx == 0:
            self.seen.append({k: v.detach().clone() for k, v in self.state_dict().items()})
        super().validation_step(batch, batch_idx)


def _trainer(tmp: Path, callbacks: list[pl.Callback], **kw: Any) -> pl.Trainer:
    kw.setdefault("enable_checkpointing", False)
    return pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=tmp, callbacks=callbacks, **kw)


def _task(cls: type[BNTask] = BNTask) -> BNTask:
    pl.seed_everything(3)
    model = make_model()
    model[3].p = 0.0  # no dropout: a resumed run must match an uninterrupted one (no RNG state to restore)
    return cls(model, lr=0.05)


def _expected(weights: list[dict[str, Tensor]], decay: float, warmup: bool) -> dict[str, Tensor]:
    avg = {k: v.clone() for k, v in weights[0].items()}
    for n, w in enumerate(weights[1:], start=1):
        d = min(decay, (1 + n) / (10 + n)) if warmup else decay
        avg = {k: d * avg[k] + (1 - d) * w[k] for k in avg}
    return avg


@pytest.mark.parametrize(("decay", "warmup", "every"), [(0.5, False, 1), (0.5, True, 1), (0.9, True, 2)])
def test_module_ends_with_the_average_of_the_trained_weights(tmp_path: Path, decay: float, warmup: bool,
                                                             every: int) -> None:
    task, record = _task(), _Record()
    train, _ = loaders(shuffle=False)
    _trainer(tmp_path, [record, EMAWeights(decay=decay, warmup=warmup, every_n_steps=every)],
             max_steps=9, limit_val_batches=0).fit(task, train)
    updates = record.weights[every - 1::every]  # after steps every, 2 every, ...
    want = _expected(updates, decay, warmup)
    got = dict(task.named_parameters())
    for k, v in want.items():
        torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-6)
    # not the trained weights (a bias before a batch norm gets no gradient: it moves by rounding only)
    moved = [k for k in want if (record.weights[0][k] - record.weights[-1][k]).abs().max() > 1e-3]
    assert len(moved) >= 4
    assert all(not torch.allclose(got[k], record.weights[-1][k]) for k in moved)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="decay must be in"):
        EMAWeights(decay=1.0)
    with pytest.raises(ValueError, match="every_n_steps must be >= 1"):
        EMAWeights(every_n_steps=0)


def test_validation_runs_the_average_with_its_own_statistics(tmp_path: Path) -> None:
    # PreciseBatchNorm's statistics must be those of the averaged weights that validation runs
    task, record = _task(_ValTask), _Record()
    train, val = loaders(shuffle=False)
    _trainer(tmp_path, [PreciseBatchNorm(num_batches=3), record, EMAWeights(decay=0.8)], max_steps=6,
             limit_train_batches=6, num_sanity_val_steps=0).fit(task, train, val)
    assert isinstance(task, _ValTask) and len(task.seen) == 1
    seen = task.seen[0]
    want = _expected(record.weights, 0.8, True)
    for k, v in want.items():
        torch.testing.assert_close(seen[k], v, rtol=1e-5, atol=1e-6)
    model = make_model()
    model.load_state_dict({k[len("model."):]: v for k, v in seen.items()})
    recalibrate_batch_norm(model, [b[0] for b in train], num_batches=3)
    held = [seen[f"model.{i}.{s}"] for i in (1, 5) for s in ("running_mean", "running_var")]
    for a, b in zip(held, bn_stats(model), strict=True):
        torch.testing.assert_close(a, b)
    # after validation training went on from the trained weights, not from the average
    assert not torch.allclose(record.weights[-1]["model.0.weight"], want["model.0.weight"])


def test_validation_without_re_estimation_runs_the_averaged_statistics(tmp_path: Path) -> None:
    # PreciseBatchNorm(before_validation=False): validation sees the moving average of the batch-norm buffers
    # as they were (not re-estimated); when training ends the average's statistics are re-estimated all the same
    task, record = _task(_ValTask), _Record(buffers=True)
    train, val = loaders(shuffle=False)
    _trainer(tmp_path, [PreciseBatchNorm(num_batches=3, before_validation=False), record, EMAWeights(decay=0.8)],
             max_steps=6, limit_train_batches=6, num_sanity_val_steps=0).fit(task, train, val)
    assert isinstance(task, _ValTask) and len(task.seen) == 1
    want = _expected(record.weights, 0.8, True)
    stats = [f"model.{i}.{s}" for i in (1, 5) for s in ("running_mean", "running_var")]
    for k, v in want.items():
        torch.testing.assert_close(task.seen[0][k], v, rtol=1e-5, atol=1e-6, msg=k)
    model = make_model()
    model.load_state_dict({k[len("model."):]: v for k, v in task.state_dict().items()})
    recalibrate_batch_norm(model, [b[0] for b in train], num_batches=3)
    for k, b in zip(stats, bn_stats(model), strict=True):
        torch.testing.assert_close(task.state_dict()[k], b, msg=k)  # re-estimated at the end
        assert not torch.allclose(want[k], b, rtol=1e-3, atol=1e-4), k  # which validation did not see


def test_checkpoints_hold_both_and_a_resumed_run_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    def run(where: Path, stops: list[int]) -> BNTask:
        task = _task()
        train, _ = loaders(shuffle=False)
        for steps in stops:
            ck = RunCheckpoint(dirpath=str(where), every_n_train_steps=2)
            last = where / "last.ckpt"
            _trainer(where, [PreciseBatchNorm(num_batches=3), EMAWeights(decay=0.9), ck], max_steps=steps,
                     limit_train_batches=4, limit_val_batches=0, enable_checkpointing=True).fit(
                task, train, ckpt_path=str(last) if last.exists() else None)
        return task

    whole, resumed = run(tmp_path / "a", [8]), run(tmp_path / "b", [4, 8])
    for k, v in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0, msg=k)
    a = torch.load(tmp_path / "a" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 8
    for k, v in a["current_model_state"].items():
        torch.testing.assert_close(b["current_model_state"][k], v, rtol=0, atol=0, msg=k)
    # state_dict: the average with the statistics the module ends with; current_model_state: the trained weights
    for k, v in whole.state_dict().items():
        torch.testing.assert_close(a["state_dict"][k], v, rtol=0, atol=0, msg=k)
    assert not torch.allclose(a["current_model_state"]["model.0.weight"], a["state_dict"]["model.0.weight"])

    # evaluating the checkpoint outside fit with the callback still configured: the average, and no warning
    fresh = _task()
    _, val = loaders(shuffle=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(tmp_path / "t", [EMAWeights(decay=0.9)]).validate(fresh, val, verbose=False,
                                                                   ckpt_path=str(tmp_path / "a" / "last.ckpt"))
    assert not [w for w in caught if "WeightAveraging" in str(w.message)]
    for k, v in whole.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[k], v, rtol=0, atol=0, msg=k)
