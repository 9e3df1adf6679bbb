"""Fixtures for the rendering tests: a fake renderer, and a check that no process was left behind."""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def _processes_with(marker: str) -> list[int]:
    """Live (non-zombie) processes, other than this one, whose command line contains ``marker``."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if state != "Z" and marker in cmd:
            found.append(int(d.name))
    return found


@pytest.fixture
def no_processes_left() -> Callable[[str], None]:
    """``check(marker)``: asserts that no live process has ``marker`` in its command line.

    A process killed with SIGKILL leaves /proc shortly after the signal, so the check waits up to 10 s for
    them to go before it fails. Skips where there is no /proc.
    """
    if not Path("/proc/self/stat").exists():
        pytest.skip("the process check reads /proc")

    def check(marker: str) -> None:
        deadline = time.monotonic() + 10.0
        while _processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _processes_with(marker) == [], f"processes left behind: {_processes_with(marker)}"

    return check


@pytest.fixture
def fake_renderer(tmp_path: Path) -> Callable[..., Path]:
    """``make(endless=True)``: a stand-in for ``fluidsynth`` in ``tmp_path``.

    The script starts a grandchild (``python -c 'sleep' <tmp_path>``, so it can be found by its command
    line), then writes random bytes to standard output without end (``endless``) or sleeps for 10
    minutes without writing. It ignores its arguments.
    """

    def make(endless: bool = True) -> Path:
        script = tmp_path / "fake-fluidsynth"
        body = (
            "import os\nblock = os.urandom(1 << 16)\nwhile True:\n    sys.stdout.buffer.write(block)\n"
            if endless
            else "import time\ntime.sleep(600)\n"
        )
        script.write_text(
            f"#!{sys.executable}\n"
            "import subprocess, sys\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {str(tmp_path)!r}])\n"
            + body
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        return script

    return make
