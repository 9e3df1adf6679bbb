"""Distributed training (2 CPU processes) and resuming after SIGKILL, through the real command."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from bounded_subprocess import run_bounded

ATTNKIT = str(Path(sys.executable).parent / "attnkit")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def _run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return run_bounded([ATTNKIT, *args], env=env, timeout=600, **kw)


def _last_val(run: Path) -> dict[str, float]:
    rows = [r for f in sorted(run.glob("logs/version_*/metrics.csv")) for r in csv.DictReader(f.open())]
    val = [r for r in rows if r.get("val/loss")]
    return {k: float(val[-1][k]) for k in ("val/loss", "val/acc")}


def test_ddp_two_cpu_processes_match_one_process() -> None:
    # Same global batch (1 x 64 vs 2 x 32), no shuffling and no dropout: the DistributedSampler gives rank r
    # the samples r, r+2, ... of each global batch, so both runs take identical optimizer steps. Tolerance:
    # float32 reductions in a different order, 1e-4 on the loss and exact accuracy.
    common = ["fit", "-c", "demo", *QUIET, "--data.num_samples", "256", "--data.shuffle", "false",
              "--trainer.max_epochs", "2", "--model.init_args.model.init_args.dropout", "0.0"]
    one = _run([*common, "--data.batch_size", "64", "--trainer.default_root_dir", "runs/one"])
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run([*common, "--data.batch_size", "32", "--trainer.default_root_dir", "runs/two",
                "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.devices", "2"])
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _last_val(Path("runs/one")), _last_val(Path("runs/two"))
    assert abs(a["val/loss"] - b["val/loss"]) < 1e-4, (a, b)
    assert a["val/acc"] == b["val/acc"], (a, b)
    sa = torch.load("runs/one/checkpoints/last.ckpt", weights_only=True)
    sb = torch.load("runs/two/checkpoints/last.ckpt", weights_only=True)
    assert sa["global_step"] == sb["global_step"] == 2 * 256 // 64


def _step(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True, map_location="cpu")["global_step"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


def test_sigkill_mid_epoch_resumes_to_the_same_step_count() -> None:
    steps_per_epoch = 1024 // 8
    common = ["fit", "-c", "demo", *QUIET, "--data.num_samples", "1024", "--data.batch_size", "8",
              "--trainer.max_epochs", "2", "--checkpoint.every_n_train_steps", "10",
              "--trainer.limit_val_batches", "4"]
    ref = _run([*common, "--trainer.default_root_dir", "runs/ref"])
    assert ref.returncode == 0, ref.stderr[-3000:]
    expected = _step(Path("runs/ref/checkpoints/last.ckpt"))
    assert expected == 2 * steps_per_epoch

    run = Path("runs/killed")
    last = run / "checkpoints/last.ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([ATTNKIT, *common, "--trainer.default_root_dir", str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    killed_at = -1
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            s = _step(last)
            # Kill in the middle of the second epoch, while checkpoints are being written every 10 steps.
            if s > steps_per_epoch + 20:
                time.sleep(0.05)
                proc.send_signal(signal.SIGKILL)
                killed_at = s
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None and killed_at < 0:  # the test failed before the kill: stop the run
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert killed_at > 0, "the run finished before it could be killed; make it longer"
    assert proc.returncode == -signal.SIGKILL
    # Every checkpoint file on disk is complete (atomic writes): it loads.
    for f in (run / "checkpoints").glob("*.ckpt"):
        assert _step(f) >= 0, f"{f} is not a complete checkpoint"
    before = _step(last)
    assert steps_per_epoch < before < expected

    resumed = _run([*common, "--trainer.default_root_dir", str(run), "--ckpt_path", "last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _step(last) == expected
    assert not list((run / "checkpoints").glob(".*.tmp"))
