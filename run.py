#!/usr/bin/env python3
"""The README's two commands, for a fresh machine with only Python 3.11+ and git.

    python3 run.py demo   # install uv and the locked environment, then train the built-in default
    python3 run.py test   # install, then run the test suite

Extra arguments are passed on (`python3 run.py test tests/core -x`, `python3 run.py demo --trainer.max_epochs 1`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"
DEFAULT_CONFIG = "demo"


def _uv() -> str:
    """A uv executable: on PATH, in .tools/, or installed there from PyPI."""
    found = shutil.which("uv")
    if found:
        return found
    local = TOOLS / "bin" / "uv"
    if local.exists():
        return str(local)
    print("run.py: installing uv from PyPI into .tools/", flush=True)
    venv.EnvBuilder(with_pip=True).create(TOOLS)
    subprocess.run([str(TOOLS / "bin" / "python"), "-m", "pip", "install", "--quiet", "uv"], check=True)
    return str(local)


def _sync(uv: str) -> None:
    """Install the locked environment (uv.lock) into .venv."""
    subprocess.run([uv, "sync", "--frozen"], cwd=ROOT, check=True)


def main(argv: list[str]) -> int:
    """Run ``demo`` or ``test`` with the extra arguments; returns the exit status."""
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    # run.py itself runs on whatever python3 the machine has, older ones included: say why it stops
    if sys.version_info < (3, 11):  # noqa: UP036
        print(f"run.py: attnkit needs Python 3.11+, this is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    uv = _uv()
    _sync(uv)
    env = dict(os.environ)
    if argv[0] == "test":
        return subprocess.run([uv, "run", "--frozen", "pytest", *argv[1:]], cwd=ROOT, env=env).returncode
    # The main job: train the built-in default, then report its best checkpoint on the test split.
    attnkit = [uv, "run", "--frozen", "attnkit"]
    fit = subprocess.run([*attnkit, "fit", "-c", DEFAULT_CONFIG, *argv[1:]], cwd=ROOT, env=env)
    if fit.returncode != 0:
        return fit.returncode
    test = [*attnkit, "test", "-c", DEFAULT_CONFIG, *argv[1:], "--ckpt_path", "best"]
    return subprocess.run(test, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
