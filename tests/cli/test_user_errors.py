"""User errors through the real commands: one short message naming the file/key, non-zero exit, no traceback.

Each case runs ``attnkit`` (or ``attnkit-audio``) in a subprocess, offline (every HTTP(S) request goes to a
closed port), with an empty data root. The ``attnkit`` cases need the command's top-level handler that
prints ``attnkit: error: <message>`` for :class:`attnkit.core.errors.UserError`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

TIMEOUT_S = 240
MAX_BYTES = 1 << 20


def _run(args: list[str], tmp_path: Path, module: str = "attnkit.core.cli") -> tuple[int, str]:
    """Run ``python -m module args`` offline on an empty data root; returns (exit code, stderr)."""
    root = tmp_path / "data"
    root.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "ATTNKIT_DATA_DIR": str(root),
        "ATTNKIT_CACHE_DIR": str(tmp_path / "cache"),
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "no_proxy": "",
        "NO_PROXY": "",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("ATTNKIT_DEBUG", None)
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.run([sys.executable, "-m", module, *args], stdout=fo, stderr=fe, env=env,
                              cwd=tmp_path, timeout=TIMEOUT_S, check=False)
    with err.open("rb") as fe:
        text = fe.read(MAX_BYTES).decode(errors="replace")
    out.unlink()
    err.unlink()
    return proc.returncode, text


def _error_line(rc: int, stderr: str, prefix: str = "attnkit: error: ") -> str:
    assert rc != 0, stderr
    assert "Traceback" not in stderr, stderr
    assert len(stderr.splitlines()) <= 15, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith(prefix)]
    assert len(lines) == 1, stderr
    return lines[0]


def test_missing_dataset_offline(tmp_path: Path) -> None:
    rc, err = _run(["fit", "-c", "sasrec-games", "--trainer.fast_dev_run=true"], tmp_path)
    line = _error_line(rc, err)
    assert "'sasrec-games'" in line and str(tmp_path / "data" / "sasrec-games" / "Video.txt") in line
    assert "https://raw.githubusercontent.com/kang205/SASRec/master/data/Video.txt" in line
    assert "b7376fe24430743f411dc7f567285657b2adb3f74361cc7ba0aee94f3024b651" in line


def test_missing_data_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    rc, err = _run(["fit", "-c", "sasrec-games", "--data.path", str(missing), "--trainer.fast_dev_run=true"],
                   tmp_path)
    line = _error_line(rc, err)
    assert str(missing) in line and "--data.path" in line


def test_nonexistent_checkpoint(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ckpt"
    rc, err = _run(["test", "-c", "demo", "--data.num_samples", "64", "--ckpt_path", str(missing)], tmp_path)
    line = _error_line(rc, err)
    assert str(missing) in line and "does not exist" in line


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "cut.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(4096)}, "global_step": 1}, path)
    path.write_bytes(path.read_bytes()[:-1000])
    rc, err = _run(["test", "-c", "demo", "--data.num_samples", "64", "--ckpt_path", str(path)], tmp_path)
    line = _error_line(rc, err)
    assert f"checkpoint {path} is truncated or not a checkpoint file" in line


def test_malformed_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model:\n  class_path: SequenceClassificationTask\n  init_args:\n    lr: [0.1\n"
                   "trainer:\n  max_epochs: 1\n")
    rc, err = _run(["fit", "-c", str(cfg)], tmp_path)
    line = _error_line(rc, err)
    assert f"{cfg}:" in line and "yaml" not in line.split(str(cfg))[0].lower()


def test_bad_config_value(tmp_path: Path) -> None:
    rc, err = _run(["fit", "-c", "demo", "--trainer.max_epochs", "abc"], tmp_path)
    line = _error_line(rc, err)
    assert "max_epochs" in line and "abc" in line
    assert "usage:" not in err


def test_audio_quality_download_offline(tmp_path: Path) -> None:
    wav = tmp_path / "speech.wav"
    t = np.arange(32000) / 16000
    sf.write(wav, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    rc, err = _run(["quality", str(wav), "--download"], tmp_path, module="attnkit.audio.cli")
    line = _error_line(rc, err, prefix="error: ")
    assert "'nisqa-weights'" in line and str(tmp_path / "data" / "nisqa-weights" / "nisqa.tar") in line
    assert "offline" in line and "7ec4cf937514dd3f8860b21e66fabd8ca87a168572675ef8d979c4c4ad2e805c" in line
