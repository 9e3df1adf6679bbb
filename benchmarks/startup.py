"""Start-up cost of attnkit's commands and imports, each in a fresh process (CPU seconds, warm bytecode).

    uv run python benchmarks/startup.py            # 5 rounds, interleaved
    uv run python benchmarks/startup.py --rounds 3 --json startup.json
    uv run python benchmarks/startup.py --baseline ../old-checkout   # before/after, interleaved

With ``--baseline DIR`` every case also runs with ``DIR/.venv`` (another checkout of attnkit with its own
environment, e.g. ``git worktree add ../old-checkout <commit> && cd ../old-checkout && uv sync``), in the same
rounds, and the table gets a "before" column.

Each case runs once first to warm the bytecode cache, then ``--rounds`` times interleaved with the other
cases. CPU seconds (user + system of the child) are the figure: unlike wall time they hardly move with the
machine's load. The targets of the task contract are printed beside the medians. ``one-file quality``
scores one generated 3 s clip with the original NISQA weights and is skipped when they are not under
``ATTNKIT_DATA_DIR/nisqa-weights``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent



def cases_for(bin_dir: Path) -> dict[str, tuple[list[str], float]]:
    """``{name: (command, target CPU seconds)}`` using the executables in ``bin_dir``."""
    py, attnkit = str(bin_dir / "python"), str(bin_dir / "attnkit")
    nan = float("nan")
    return {
        "attnkit --help": ([attnkit, "--help"], 1.5),
        "attnkit configs": ([attnkit, "configs"], 1.5),
        "attnkit datasets": ([attnkit, "datasets"], 1.5),
        "attnkit models": ([attnkit, "models"], 1.5),
        "from attnkit.recsys import SASRec": ([py, "-c", "from attnkit.recsys import SASRec"], 3.0),
        "from attnkit.timeseries import SAITS": ([py, "-c", "from attnkit.timeseries import SAITS"], 3.0),
        "from attnkit.vision import UTransformer": ([py, "-c", "from attnkit.vision import UTransformer"], 3.0),
        "from attnkit.audio import NISQA": ([py, "-c", "from attnkit.audio import NISQA"], 3.0),
        "import torch (reference)": ([py, "-c", "import torch"], nan),
        "import lightning.pytorch (reference)": ([py, "-c", "import lightning.pytorch"], nan),
    }


def cpu_seconds(cmd: list[str], env: dict[str, str]) -> float:
    """User + system CPU seconds of one child process running ``cmd`` (bounded to 120 s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="also write the medians here")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout with .venv: a 'before' column")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cases = cases_for(BIN)
    if args.baseline is not None:
        for name, (cmd, target) in cases_for(args.baseline.resolve() / ".venv" / "bin").items():
            cases[f"{name} [before]"] = (cmd, target)
    weights = Path(os.environ.get("ATTNKIT_DATA_DIR", "~/.cache/attnkit")).expanduser() / "nisqa-weights/nisqa.tar"
    with tempfile.TemporaryDirectory(prefix="attnkit-startup-") as tmp:
        if weights.is_file():
            clip = Path(tmp) / "clip.wav"
            subprocess.run([sys.executable, "-c", (
                "import numpy as np, soundfile as sf; t = np.arange(48000) / 16000; "
                f"sf.write({str(clip)!r}, (0.1 * np.sin(2 * np.pi * 220 * t)).astype('float32'), 16000)")],
                check=True, timeout=60)
            quality = [str(clip), "--weights", str(weights)]
            cases["attnkit-audio quality (one file)"] = ([str(BIN / "attnkit-audio"), "quality", *quality], 5.0)
            if args.baseline is not None:
                base = args.baseline.resolve() / ".venv" / "bin" / "attnkit-audio"
                cases["attnkit-audio quality (one file) [before]"] = ([str(base), "quality", *quality], 5.0)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for name, (cmd, _) in list(cases.items()):  # warm the bytecode cache; drop what does not run
            try:
                cpu_seconds(cmd, env)
            except RuntimeError as e:
                print(f"skipped {name!r}: {str(e).splitlines()[-1]}", file=sys.stderr)
                del cases[name], times[name]
        for _ in range(args.rounds):
            for name, (cmd, _) in cases.items():
                times[name].append(cpu_seconds(cmd, env))
    load = os.getloadavg()
    print(f"python {sys.version.split()[0]}, {args.rounds} rounds, load average {load[0]:.2f} {load[1]:.2f}")
    print(f"{'case':<42} {'median CPU s':>12} {'min':>6} {'target':>7} {'before':>8}")
    for name, (_, target) in cases.items():
        if name.endswith(" [before]"):
            continue
        med = statistics.median(times[name])
        ok = "" if target != target else ("  ok" if med <= target else "  OVER")
        tgt = "" if target != target else f"{target:.1f}"
        before = times.get(f"{name} [before]")
        old = f"{statistics.median(before):>8.2f}" if before else f"{'-':>8}"
        print(f"{name:<42} {med:>12.2f} {min(times[name]):>6.2f} {tgt:>7} {old}{ok}")
    if args.json:
        args.json.write_text(json.dumps({k: statistics.median(v) for k, v in times.items()}, indent=1))


if __name__ == "__main__":
    main()
