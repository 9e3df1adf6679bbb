"""benchmarks/vision_curves.sh and its tables: resume, parallel pairs (JOBS), failures, cleanup, paired differences.

The sweep runs against a stand-in `attnkit` (a small script that records each call and writes the metrics file a
real test run writes), so these tests check the sweep's own logic in seconds; the models are covered elsewhere.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType

import pytest

from bounded_subprocess import run_bounded

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"

# the stand-in: Dice = 50 + steps / 10 + 0.01 * seed (+ 1 for transdae, + 0.1 * fold), written as a fraction
FAKE_ATTNKIT = textwrap.dedent('''\
    import csv, os, sys, time
    from pathlib import Path
    args = sys.argv[1:]
    calls = Path(os.environ["FAKE_CALLS"])
    if args[0] == "configs":
        print("unet-drive  U-Net on DRIVE\\ntransdae-drive  x\\nunet-isbi2012  x\\ntransdae-isbi2012  x")
        sys.exit(0)
    opt = {args[i]: args[i + 1] for i in range(1, len(args) - 1) if args[i].startswith("-")}
    cfg, seed = opt["-c"], int(opt["--seed_everything"])
    run = Path("runs") / cfg
    run.mkdir(parents=True, exist_ok=True)
    with open(calls, "a") as fh:
        fh.write(f"{args[0]} {cfg} {os.getcwd()} {os.environ.get('ATTNKIT_NUM_THREADS', '-')} {os.getpid()}\\n")
    if args[0] == "fit":
        if cfg == os.environ.get("FAKE_FAIL"):
            sys.exit(3)
        marker = Path(os.environ["FAKE_RUNNING"]) / str(os.getpid())
        marker.touch()
        with open(calls.with_name("concurrent"), "a") as fh:
            fh.write(f"{len(list(marker.parent.iterdir()))}\\n")
        time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
        marker.unlink()
        (run / "steps").write_text(opt["--trainer.max_steps"])
        sys.exit(0)
    steps = int((run / "steps").read_text())
    fold = int(opt.get("--data.fold", "0"))
    dice = 50 + steps / 10 + 0.01 * seed + (1 if cfg.startswith("transdae") else 0) + 0.1 * fold
    version = run / "logs" / f"version_{len(list((run / 'logs').glob('version_*'))) if (run / 'logs').exists() else 0}"
    version.mkdir(parents=True)
    with open(version / "metrics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "test/dice"])
        w.writerow([0, dice / 100])
''')


def expected_dice(model: str, seed: int, steps: int, fold: int = 0) -> float:
    return 50 + steps / 10 + 0.01 * seed + (1 if model == "transdae" else 0) + 0.1 * fold


@pytest.fixture
def sweep(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    fake = tmp_path / "attnkit"
    fake.write_text(f"#!{sys.executable}\n" + FAKE_ATTNKIT)
    fake.chmod(0o755)
    (tmp_path / "running").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ATTNKIT_NUM_THREADS"}
    env.update(ATTNKIT=str(fake), PYTHON=sys.executable, FAKE_CALLS=str(tmp_path / "calls"),
               FAKE_RUNNING=str(tmp_path / "running"), MODELS="unet transdae", DATASETS="drive isbi2012",
               FOLDS="0 1", BUDGETS="2 4", SEEDS="42 43")
    return work, env


def run_sweep(work: Path, env: dict[str, str], **extra: str) -> tuple[int, str, str]:
    proc = run_bounded(["bash", str(BENCH / "vision_curves.sh")], timeout=180, cwd=work, env={**env, **extra})
    return proc.returncode, proc.stdout, proc.stderr


def read_curves(work: Path) -> dict[tuple[str, str, str, str, str], float]:
    with open(work / "curves.tsv") as fh:
        return {(r["dataset"], r["fold"], r["model"], r["seed"], r["steps"]): float(r["dice"])
                for r in csv.DictReader(fh, delimiter="\t")}


def calls(env: dict[str, str]) -> list[list[str]]:
    path = Path(env["FAKE_CALLS"])
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def all_pairs() -> dict[tuple[str, str, str, str, str], float]:
    out = {}
    for model in ("unet", "transdae"):
        for seed in (42, 43):
            for steps in (2, 4):
                out[("drive", "-", model, str(seed), str(steps))] = expected_dice(model, seed, steps)
                for fold in (0, 1):
                    out[("isbi2012", str(fold), model, str(seed), str(steps))] = expected_dice(model, seed, steps, fold)
    return out


def test_serial_sweep_writes_every_budget_and_the_paired_table(sweep: tuple[Path, dict[str, str]]) -> None:
    work, env = sweep
    rc, out, err = run_sweep(work, env)
    assert rc == 0, err
    assert read_curves(work) == pytest.approx(all_pairs())
    # the second budget resumes the first: both fits of a pair run in the same directory
    fits = [c for c in calls(env) if c[0] == "fit" and c[1] == "unet-drive"]
    assert len(fits) == 4 and {c[2] for c in fits} == {str(work / "drive" / "seed42"), str(work / "drive" / "seed43")}
    # transdae is 1.00 above the unet at every seed, fold and budget; ISBI's fold mean too
    assert "| drive | transdae | +1.00, SE 0.00 (2 of 2 at or above) | +1.00, SE 0.00 (2 of 2 at or above) |" in out
    assert "| isbi2012 mean of 2 folds | transdae | +1.00, SE 0.00 (2 of 2 at or above) |" in out
    # a finished sweep is not re-run: the second call only prints the tables
    n_calls = len(calls(env))
    rc, out2, err = run_sweep(work, env)
    assert rc == 0, err
    assert len(calls(env)) == n_calls  # no fit or test (`configs` is not recorded)
    assert out2.splitlines()[-5:] == out.splitlines()[-5:]


def test_parallel_sweep_runs_pairs_side_by_side_with_a_share_of_the_cpus(sweep: tuple[Path, dict[str, str]]) -> None:
    work, env = sweep
    rc, out, err = run_sweep(work, env, JOBS="3", FAKE_SLEEP="0.6", DATASETS="drive")
    assert rc == 0, err
    assert read_curves(work) == pytest.approx({k: v for k, v in all_pairs().items() if k[0] == "drive"})
    ncpu = os.cpu_count() or 1
    assert {c[3] for c in calls(env) if c[0] != "configs"} == {str(max(1, ncpu // 3))}
    # four pairs, three at a time: their fits overlap in time (the log of each pair holds its own output)
    concurrent = [int(n) for n in (Path(env["FAKE_CALLS"]).with_name("concurrent")).read_text().split()]
    assert 2 <= max(concurrent) <= 3
    starts = [line for line in out.splitlines() if line.startswith("== start")]
    assert len(starts) == 4
    assert (work / "drive" / "seed43" / "transdae-drive.log").read_text().count("Dice") == 2
    assert "| drive | transdae | +1.00, SE 0.00 (2 of 2 at or above)" in out
    assert not list(work.glob(".vision_curves_status.*"))  # its bookkeeping is removed


def test_parallel_sweep_keeps_going_past_a_failed_pair_and_names_it(sweep: tuple[Path, dict[str, str]]) -> None:
    work, env = sweep
    rc, out, err = run_sweep(work, env, JOBS="2", DATASETS="drive", FAKE_FAIL="transdae-drive",
                             ATTNKIT_NUM_THREADS="1")
    assert rc == 1
    assert "| drive | unet | 50.62 +- 0.01 (n=2) |" in out  # the tables of what finished come first
    assert "drive transdae-drive seed 42" in err and "drive transdae-drive seed 43" in err
    assert "unet-drive" not in err
    rows = read_curves(work)
    assert {k[2] for k in rows} == {"unet"} and len(rows) == 4


def test_a_stopped_parallel_sweep_ends_the_runs_it_started(sweep: tuple[Path, dict[str, str]]) -> None:
    work, env = sweep
    proc = subprocess.Popen(["bash", str(BENCH / "vision_curves.sh")], cwd=work, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**env, "JOBS": "2", "FAKE_SLEEP": "120", "DATASETS": "drive"})
    try:
        running = Path(env["FAKE_RUNNING"])
        deadline = time.monotonic() + 60
        while len(list(running.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = [int(p.name) for p in running.iterdir()]
        assert len(pids) == 2
        proc.send_signal(signal.SIGTERM)  # to the script only, not its process group
        assert proc.wait(timeout=30) == 143
        for pid in pids:
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _alive(pid), f"run {pid} outlived the stopped sweep"
        assert not list(work.glob(".vision_curves_status.*"))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has ended
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_jobs_must_be_a_positive_whole_number(sweep: tuple[Path, dict[str, str]]) -> None:
    work, env = sweep
    rc, _out, err = run_sweep(work, env, JOBS="two")
    assert rc == 2 and "JOBS must be a whole number >= 1, got 'two'" in err


@pytest.fixture(scope="module")
def table() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        import vision_curves_table

        return vision_curves_table
    finally:
        sys.path.remove(str(BENCH))


def write_tsv(path: Path, rows: list[tuple[str, str, str, int, int, float]]) -> Path:
    lines = ["dataset\tfold\tmodel\tseed\tsteps\tdice"] + ["\t".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_paired_differences_use_only_seeds_and_folds_run_for_both(table: ModuleType, tmp_path: Path) -> None:
    rows = table.read_rows([write_tsv(tmp_path / "a.tsv", [
        ("drive", "-", "unet", 42, 100, 70.0), ("drive", "-", "transdae", 42, 100, 72.0),
        ("drive", "-", "unet", 43, 100, 75.0), ("drive", "-", "transdae", 43, 100, 74.0),
        ("drive", "-", "transdae", 44, 100, 99.0),  # no U-Net at seed 44: not paired
        ("isbi2012", "0", "unet", 42, 100, 80.0), ("isbi2012", "1", "unet", 42, 100, 70.0),
        ("isbi2012", "0", "msga", 42, 100, 81.0), ("isbi2012", "1", "msga", 42, 100, 72.0),
        ("isbi2012", "0", "msga", 43, 100, 90.0), ("isbi2012", "0", "unet", 43, 100, 91.0),  # fold 1 missing
    ])])
    diffs = table.paired_cells(rows, "unet")
    assert diffs[("drive", "transdae", 100)].values == pytest.approx((2.0, -1.0))
    assert diffs[("drive", "transdae", 100)].paired() == "+0.50, SE 1.50 (1 of 2 at or above)"
    assert diffs[("isbi2012 mean of 2 folds", "msga", 100)].values == pytest.approx((1.5,))
    assert diffs[("isbi2012 fold 0", "msga", 100)].values == pytest.approx((1.0, -1.0))
    curves = table.curve_cells(rows)
    assert curves[("drive", "transdae", 100)].values == pytest.approx((72.0, 74.0, 99.0))
    assert curves[("isbi2012 mean of 2 folds", "unet", 100)].values == pytest.approx((75.0,))


def test_joined_files_count_a_repeated_row_once_and_refuse_two_dice_for_one_pair(table: ModuleType,
                                                                                tmp_path: Path) -> None:
    a = write_tsv(tmp_path / "a.tsv", [("ph2", "-", "unet", 42, 100, 80.0)])
    b = write_tsv(tmp_path / "b.tsv", [("ph2", "-", "unet", 42, 100, 80.0), ("ph2", "-", "msga", 42, 100, 85.0)])
    assert len(table.read_rows([a, b])) == 2
    c = write_tsv(tmp_path / "c.tsv", [("ph2", "-", "unet", 42, 100, 81.0)])
    with pytest.raises(ValueError, match=r"c.tsv:2: .*Dice 81.0 here and 80.0 in .*a.tsv:2"):
        table.read_rows([a, c])
    bad = tmp_path / "bad.tsv"
    bad.write_text("dataset\tmodel\tdice\nph2\tunet\t80\n")
    assert table.main([str(bad)]) == 2
