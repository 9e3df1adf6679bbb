"""Every domain under DDP with 2 CPU processes against 1 process, on tiny data (script: ddp_domains.py).

Two runs serve all tests (process start-up dominates): one process with global batch B (in this process),
then two processes with B / 2 each (the script), which also test the 1-process checkpoints. Per domain:

(a) the training samples the two ranks read in each epoch are disjoint and together are the 1-process
    epoch (Lightning's DistributedSampler repeats one sample when the training set is odd; vision draws
    the same patches as one process, since patches are a function of (seed, epoch, index));
(b) ``test`` on the same checkpoint gives the 1-process metrics (relative tolerance 1e-4: float32 sums in a
    different order, and torchmetrics merges Pearson states from two processes by another formula (6e-6
    seen); evaluation sets have sizes that 2 does not divide, so a padded repeat would move a metric by
    ~1/n, over 1e-2);
(c) a short 2-process fit takes as many optimizer steps as the 1-process fit (exact: same global batch)
    and lands within ``FIT_TOLERANCE`` of its validation metric (the shuffles differ, so the runs are
    close, not equal).
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ddp_domains import DOMAINS, make_data, run  # noqa: E402

from bounded_subprocess import run_bounded  # noqa: E402

# main validation metric per domain and the largest relative gap allowed between the 1- and 2-process fits
FIT_TOLERANCE = {"demo": ("val/loss", 0.05), "recsys": ("val/ndcg@10", 0.15), "timeseries": ("val/mae", 0.1),
                 "vision": ("val/dice", 0.1), "quality": ("val/rmse_mos", 0.15), "tagging": ("val/loss", 0.05)}


def _script(cwd: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = run_bounded([sys.executable, str(HERE / "ddp_domains.py"), *args], env=env, timeout=900, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 1-process and 2-process runs of every domain (``one/`` and ``two/``).

    The 1-process runs happen in this process (saves a start-up); the environment (``PL_GLOBAL_SEED``), random
    states and thread count they set are restored afterwards, so other tests do not see them.
    """
    root = tmp_path_factory.mktemp("ddp")
    make_data(root / "data")
    saved_env, saved_np, saved_py = dict(os.environ), np.random.get_state(), random.getstate()
    threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.set_num_threads(1)
            (root / "one").mkdir()
            for domain in DOMAINS:
                run(domain, root / "data", root / "one", 1, None)
    finally:
        torch.set_num_threads(threads)
        np.random.set_state(saved_np)
        random.setstate(saved_py)
        os.environ.clear()
        os.environ.update(saved_env)
    _script(root, str(root / "data"), str(root / "two"), "--devices", "2", "--ckpt-dir", str(root / "one"))
    return root


def _result(runs: Path, which: str, domain: str) -> dict[str, Any]:
    return json.loads((runs / which / f"{domain}.json").read_text())


def _samples(runs: Path, which: str, domain: str, rank: int) -> dict[str, list[str]]:
    return json.loads((runs / which / f"{domain}-samples-rank{rank}.json").read_text())


@pytest.mark.parametrize("domain", DOMAINS)
def test_ranks_read_disjoint_shares_that_cover_the_epoch(runs: Path, domain: str) -> None:
    one = _samples(runs, "one", domain, 0)
    r0, r1 = _samples(runs, "two", domain, 0), _samples(runs, "two", domain, 1)
    assert set(one) == set(r0) == set(r1) and one
    for epoch, keys in one.items():
        everything = set(keys)
        a, b = r0[epoch], r1[epoch]
        assert len(set(a)) == len(a) and len(set(b)) == len(b), "a rank read a sample twice in one epoch"
        # Lightning's DistributedSampler pads an odd epoch with one repeated sample; otherwise disjoint.
        assert len(set(a) & set(b)) == len(everything) % 2, f"epoch {epoch}: the ranks share samples"
        assert set(a) | set(b) == everything, f"epoch {epoch}: the ranks' union is not the epoch"
    if len(one) > 1:  # a new epoch brings a new order (or, in vision, new patches)
        e0, e1 = sorted(one)[:2]
        assert r0[e0] != r0[e1]


@pytest.mark.parametrize("domain", DOMAINS)
def test_test_metrics_under_ddp_equal_one_process(runs: Path, domain: str) -> None:
    one, two = _result(runs, "one", domain)["test"], _result(runs, "two", domain)["test"]
    assert set(one) == set(two) and one
    for key, value in one.items():
        assert two[key] == pytest.approx(value, rel=1e-4, abs=1e-7), key


@pytest.mark.parametrize("domain", DOMAINS)
def test_two_process_fit_matches_one_process_fit(runs: Path, domain: str) -> None:
    one, two = _result(runs, "one", domain), _result(runs, "two", domain)
    assert one["global_step"] == two["global_step"] > 0
    key, tol = FIT_TOLERANCE[domain]
    assert two["val"][key] == pytest.approx(one["val"][key], rel=tol), key
