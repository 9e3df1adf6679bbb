"""benchmarks/vision_speed.py --isolate: each model timed in its own worker process, bounded and cleaned up."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from bounded_subprocess import run_bounded

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def vision_speed() -> Iterator[ModuleType]:
    # importable by name, so that a spawned worker can unpickle its target from the same module
    sys.path.insert(0, str(BENCH))
    try:
        import vision_speed

        yield vision_speed
    finally:
        sys.path.remove(str(BENCH))


def test_isolated_bench_raises_the_workers_error_with_the_model_name(vision_speed: ModuleType) -> None:
    with pytest.raises(RuntimeError, match=r"no such model.*KeyError"):
        vision_speed.IsolatedBench("no such model", 1, False, "reuse", ("no such model", "resnet34", 1, 64, 96),
                                   300)
    assert multiprocessing.active_children() == []  # the worker was reaped


def test_isolated_bench_kills_a_worker_that_does_not_answer_in_time(vision_speed: ModuleType) -> None:
    bench = object.__new__(vision_speed.IsolatedBench)
    with pytest.raises(TimeoutError, match="smp Unet: no answer"):
        bench.__init__("smp Unet", 1, False, "reuse", ("smp Unet", "resnet34", 1, 64, 96), 0.01)
    assert not bench.proc.is_alive()  # killed, not waited for: it was still starting
    assert multiprocessing.active_children() == []


def test_cli_isolate_times_every_model_in_its_own_process(tmp_path: Path) -> None:
    out = tmp_path / "speed.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = run_bounded(
        [sys.executable, str(BENCH / "vision_speed.py"), "--isolate", "--models", "smp Unet",
         "UTransformer (fast: gate_stride 8)", "--patch", "64", "--image", "96", "--batch", "1", "--repeats", "2",
         "--warmup", "1", "--malloc", "both", "--json", str(out)],
        timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "one process per model" in proc.stdout
    assert "malloc both;" in proc.stdout
    assert "inference 96x96 (s)" in proc.stdout
    res = json.loads(out.read_text())["results"]
    sysm = " [malloc system]"  # each model also timed in a worker with glibc's own malloc settings
    assert list(res) == ["smp Unet [channels_last]", "smp Unet [channels_last]" + sysm,
                         "UTransformer (fast: gate_stride 8) [channels_last]",
                         "UTransformer (fast: gate_stride 8) [channels_last]" + sysm]
    # the workers built the models: the parameter counts are theirs (the UTransformer has its gates and MHSA)
    assert 24.0 < res["smp Unet [channels_last]"]["params_m"] < 24.8
    assert res["UTransformer (fast: gate_stride 8) [channels_last]"]["params_m"] > 25.0
    assert all(r["train_images_per_s"] > 0 and r["infer_s_1000"] > 0 for r in res.values())
    # every round's times are kept (2 training rounds, 1 inference round for --repeats 2); the baseline's
    # per-round ratios are 1, the other model's are its times over the baseline's round by round
    base, ut = res["smp Unet [channels_last]"], res["UTransformer (fast: gate_stride 8) [channels_last]"]
    assert len(base["train_step_s"]) == 2 and len(base["infer_s"]) == 1
    assert base["train_ratio_rounds"] == [1.0, 1.0]
    paired = zip(ut["train_step_s"], base["train_step_s"], strict=True)
    assert ut["train_ratio_rounds"] == pytest.approx([t / t0 for t, t0 in paired])
    # the table shows the training ratio's range over the two rounds, the single inference round without one
    ut_row = next(line for line in proc.stdout.splitlines() if line.startswith("| UTransformer"))
    lo, hi = min(ut["train_ratio_rounds"]), max(ut["train_ratio_rounds"])
    assert f"x ({lo:.2f}-{hi:.2f}) |" in ut_row
    assert ut_row.rstrip().endswith("x |")
    # the system-malloc rows are compared with the system-malloc baseline, and each with its reuse twin
    base_sys = res["smp Unet [channels_last]" + sysm]
    ut_sys = res["UTransformer (fast: gate_stride 8) [channels_last]" + sysm]
    assert base_sys["train_ratio_rounds"] == [1.0, 1.0]
    paired = zip(ut_sys["train_step_s"], base_sys["train_step_s"], strict=True)
    assert ut_sys["train_ratio_rounds"] == pytest.approx([t / t0 for t, t0 in paired])
    paired = zip(ut_sys["train_step_s"], ut["train_step_s"], strict=True)
    assert ut_sys["train_vs_reuse_rounds"] == pytest.approx([t / t0 for t, t0 in paired])
    assert "train step, system / reuse" in proc.stdout


def test_round_ratios_pair_each_round_with_the_baselines(vision_speed: ModuleType) -> None:
    # a drift that slows both models in round 2 cancels in the paired ratio
    assert vision_speed.round_ratios([2.0, 4.0, 3.0], [1.0, 2.0, 2.0]) == [2.0, 2.0, 1.5]
    assert vision_speed.spread([2.0, 1.5, 2.25]) == " (1.50-2.25)"
    assert vision_speed.spread([2.0]) == ""
    with pytest.raises(ValueError, match="3 rounds against 2 of the baseline"):
        vision_speed.round_ratios([1.0, 1.0, 1.0], [1.0, 1.0])


def test_cli_rejects_an_unknown_model_with_the_choices(vision_speed: ModuleType,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["vision_speed.py", "--isolate", "--models", "smp Unett"])
    with pytest.raises(SystemExit, match=r"unknown model\(s\) \['smp Unett'\]; choose from \[.*'smp Unet'"):
        vision_speed.main()


@pytest.mark.parametrize(("flag", "value"), [("--repeats", "0"), ("--warmup", "-1")])
def test_cli_rejects_no_rounds_or_a_negative_warmup(vision_speed: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                    flag: str, value: str) -> None:
    monkeypatch.setattr(sys, "argv", ["vision_speed.py", "--models", "smp Unet", flag, value])
    with pytest.raises(SystemExit, match="--repeats must be at least 1 and --warmup at least 0"):
        vision_speed.main()
