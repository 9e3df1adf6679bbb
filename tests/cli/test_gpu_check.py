"""benchmarks/gpu_check.sh keeps working without a GPU: its --cpu mode runs every step and passes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"


@pytest.mark.slow
def test_gpu_check_cpu_mode_runs_every_step(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GPU_CHECK_DIR": str(tmp_path / "work")}
    proc = subprocess.run([str(SCRIPT), "--cpu"], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    steps = {row.split("|")[1].strip(): row.split("|")[2].strip() for row in table}
    assert set(steps) == {"make-data", "domains-1xcpu", "attention-cpu", "domains-2xcpu-ddp", "compare-ddp"}
    assert set(steps.values()) == {"ok"}
