"""``attnkit-audio quality FILE_OR_DIR [--csv]`` end to end on tiny files with exported random weights."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from attnkit.audio.cli import main
from attnkit.audio.quality import NISQA, SpeechQualityModel
from attnkit.audio.quality.convert import export_nisqa_checkpoint


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return export_nisqa_checkpoint(NISQA().eval(), tmp_path / "w" / "nisqa.tar")


def _write(path: Path, sr: int, seconds: float, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(len(path.name))
    x = (0.1 * rng.standard_normal((int(sr * seconds), channels))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, sr)
    return x


def test_folder_to_csv(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "in" / "a.wav", 16000, 0.5)
    _write(tmp_path / "in" / "sub" / "b.flac", 8000, 0.4)
    rc = main(["quality", str(tmp_path / "in"), "--weights", str(weights), "--csv", str(tmp_path / "out.csv")])
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [Path(r["file"]).name for r in rows] == ["a.wav", "b.flac"]
    assert list(rows[0]) == ["file", "mos", "noi", "dis", "col", "loud", "duration_s", "sample_rate", "warning",
                             "error"]
    want = SpeechQualityModel.from_checkpoint(weights).predict_file(tmp_path / "in" / "a.wav")
    # full precision, not the 4 decimals printed: 1e-6 tells the two apart, and leaves room for float32 kernels
    # that round differently by batch layout (an AVX-512 CPU differed from this file-by-file call by 2e-7)
    assert float(rows[0]["mos"]) == pytest.approx(want.mos, rel=1e-6, abs=1e-6)
    assert len(rows[0]["mos"].split(".")[1]) > 6
    assert "0.50 s is shorter than 3 s" in rows[0]["warning"]
    assert rows[1]["sample_rate"] == "8000"
    assert "a.wav\tmos=" in capsys.readouterr().out
    rc = main(
        [
            "quality",
            str(tmp_path / "in" / "a.wav"),
            "--weights",
            str(weights),
            "--bf16",
            "--csv",
            str(tmp_path / "b.csv"),
        ]
    )
    assert rc == 0
    fast = next(csv.DictReader((tmp_path / "b.csv").open()))
    assert float(fast["mos"]) == pytest.approx(want.mos, abs=0.05)


def test_bad_files_stop_or_skip(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "in" / "a.wav", 16000, 0.5)
    _write(tmp_path / "in" / "short.wav", 16000, 0.05)
    _write(tmp_path / "in" / "stereo.wav", 16000, 0.5, channels=2)
    (tmp_path / "in" / "fake.wav").write_bytes(b"RIFF....garbage")
    out = tmp_path / "r.csv"
    rc = main(["quality", str(tmp_path / "in"), "--weights", str(weights), "--stop-on-error", "--csv", str(out)])
    assert rc == 2
    assert "fake.wav: not a readable audio file" in capsys.readouterr().err
    assert out.is_file()  # with the rows scored before the stop (none here: the first batch held the bad file)
    # by default a bad file is reported and the others are scored (stereo is averaged, as in the original)
    rc = main(["quality", str(tmp_path / "in"), "--weights", str(weights), "--csv", str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "short.wav: too short for NISQA" in err and "fake.wav: not a readable audio file" in err
    rows = {Path(r["file"]).name: r for r in csv.DictReader(out.open())}
    assert list(rows) == ["a.wav", "fake.wav", "short.wav", "stereo.wav"]
    assert rows["a.wav"]["error"] == "" and rows["a.wav"]["mos"] and rows["stereo.wav"]["mos"]
    assert "too short" in rows["short.wav"]["error"] and rows["short.wav"]["mos"] == ""
    assert "not a readable audio file" in rows["fake.wav"]["error"]
    rc = main(["quality", str(tmp_path / "in" / "stereo.wav"), "--weights", str(weights), "--channel", "error"])
    assert rc == 1 and "stereo.wav: has 2 channels" in capsys.readouterr().err


def test_missing_inputs_and_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quality", str(tmp_path / "nope.wav")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    _write(tmp_path / "a.wav", 16000, 0.5)
    assert main(["quality", str(tmp_path / "a.wav"), "--data-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "nisqa.tar is missing" in err and "CC BY-NC-SA 4.0" in err and "--download" in err


def test_bad_input_kinds_named_in_cli_errors(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's bad-input list through the command: each error names the file."""
    d = tmp_path / "bad"
    d.mkdir()
    (d / "song.xyz").write_bytes(b"\x00\x01" * 100)  # unsupported format
    (d / "empty.wav").write_bytes(b"")  # zero-length file
    sf.write(d / "zero.wav", np.zeros(0, np.float32), 16000)  # a valid header, zero samples
    sf.write(d / "silent.wav", np.zeros(8000, np.float32), 16000)
    nan = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    nan[10] = np.nan
    sf.write(d / "nan.wav", nan, 16000, subtype="FLOAT")
    (d / "text.wav").write_text("not audio at all")
    _write(d / "stereo.wav", 16000, 0.5, channels=2)
    expected = {
        "song.xyz": "unsupported format '.xyz'",
        "empty.wav": "the file is empty",
        "zero.wav": "has zero samples",
        "silent.wav": "is silent",
        "nan.wav": "NaN or infinite",
        "text.wav": "not a readable audio file",
        "stereo.wav": "has 2 channels",
    }
    for name, message in expected.items():
        assert main(["quality", str(d / name), "--weights", str(weights), "--channel", "error"]) == 1
        err = capsys.readouterr().err
        assert f"{name}: " in err and message in err, err
