"""Every packaged NISQA config runs through the ``attnkit`` CLI on tiny fixture data."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from attnkit.core.cli import main


def _speech(sr: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    return (
        (0.5 + 0.5 * np.sin(6 * np.pi * t)) * 0.2 * np.sin(2 * np.pi * 150 * t)
        + 0.01 * rng.standard_normal(t.size)
    ).astype(np.float32)


def test_nisqa_simulated_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ATTNKIT_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "clean-speech").mkdir()
    for i in range(4):
        sf.write(tmp_path / "clean-speech" / f"s{i}.wav", _speech(16000, 1.1, i), 16000)
    main(
        [
            "fit",
            "-c",
            "nisqa-simulated",
            "--data.root",
            str(tmp_path),
            "--data.num_clips",
            "8",
            "--data.batch_size",
            "2",
            "--trainer.fast_dev_run=true",
        ]
    )
    # generated data goes to the cache folder, announced on stderr, never into the data root
    (corpus,) = (tmp_path / "cache" / "nisqa-simulated").glob("seed0-n8-sr16000-*/simulated_corpus.csv")
    assert not (tmp_path / "nisqa-simulated").exists()
    assert f"into {corpus.parent}" in capsys.readouterr().err


def test_nisqa_corpus_fit_test_predict(tmp_path: Path) -> None:
    base = tmp_path / "nisqa-corpus" / "NISQA_Corpus"
    rows = []
    for i, db in enumerate(
        [
            "NISQA_TRAIN_SIM",
            "NISQA_TRAIN_LIVE",
            "NISQA_VAL_SIM",
            "NISQA_VAL_LIVE",
            "NISQA_TEST_FOR",
            "NISQA_TEST_LIVETALK",
        ]
    ):
        (base / db).mkdir(parents=True)
        sf.write(
            base / db / f"{i}.wav", _speech(16000 if i % 2 else 48000, 0.6, i), 16000 if i % 2 else 48000
        )
        rows.append(
            {
                "db": db,
                "filepath_deg": f"{db}/{i}.wav",
                "mos": 2 + i / 3,
                "noi": 3,
                "dis": 4,
                "col": 3,
                "loud": 4,
            }
        )
    with (base / "NISQA_corpus_file.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for cmd in ("fit", "test", "predict"):
        main(
            [
                cmd,
                "-c",
                "nisqa-corpus",
                "--data.root",
                str(tmp_path),
                "--data.batch_size",
                "2",
                "--trainer.fast_dev_run=true",
            ]
        )
