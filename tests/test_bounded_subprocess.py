"""The tests' subprocess runner kills what a command started, not only the command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bounded_subprocess import run_bounded

# starts a grandchild that would sleep for 10 minutes, writes its pid, then sleeps itself
PARENT = ("import subprocess, sys, time; "
          "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
          "open(sys.argv[1], 'w').write(str(c.pid)); print('x' * 5000); time.sleep({})")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    return not _alive(pid)


def test_timeout_kills_the_grandchild(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(subprocess.TimeoutExpired):
        run_bounded([sys.executable, "-c", PARENT.format(600), str(pid_file)], timeout=5)
    assert _gone(int(pid_file.read_text()))


def test_normal_exit_kills_what_it_left_behind_and_bounds_output(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    proc = run_bounded([sys.executable, "-c", PARENT.format(0), str(pid_file)], timeout=60, max_bytes=100)
    assert proc.returncode == 0
    assert proc.stdout == "x" * 99 + "\n"
    assert _gone(int(pid_file.read_text()))
