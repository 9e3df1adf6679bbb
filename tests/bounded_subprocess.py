"""``subprocess.run`` for tests that start process trees (DDP ranks, data-loader workers).

``subprocess.run(..., timeout=)`` kills only the process it started: the rank that Lightning's DDP launcher
spawned survives it, waits on a collective forever and holds a core (seen: a timed-out DDP test left its rank 1
running). Here the command runs in its own session, so its process group holds everything it starts; the whole
group is killed when the command times out, when the test is interrupted, and after it exits (a rank it left
behind). Output is captured up to ``max_bytes`` per stream (the tail is kept).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(fh: Any, max_bytes: int) -> str:
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - max_bytes))
    return fh.read().decode(errors="replace")


def run_bounded(cmd: Sequence[str], *, timeout: float, max_bytes: int = 1 << 20,
                **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to completion within ``timeout`` seconds; ``stdout`` / ``stderr`` are its last ``max_bytes``.

    Raises ``subprocess.TimeoutExpired`` after killing the command and everything it started.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, start_new_session=True, **kwargs)
        try:
            proc.wait(timeout=timeout)
        finally:  # timed out, interrupted or done: kill the group (what it left behind outlives it), then reap
            _kill_group(proc.pid)
            proc.wait()
        return subprocess.CompletedProcess(list(cmd), proc.returncode, _tail(out, max_bytes), _tail(err, max_bytes))
