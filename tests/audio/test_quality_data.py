"""Simulated corpus generator, NISQA-format CSV data modules, padding masks and SpeechQualityTask."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from attnkit.audio.quality import (
    NISQA,
    Degradation,
    SimulatedQualityDataModule,
    SpeechQualityDataModule,
    SpeechQualityTask,
    collate_quality,
    generate_corpus,
    label_degradation,
)
from attnkit.audio.quality.simulate import apply_degradation, mos_from_r, r_from_mos


def _speech(sr: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (env * (0.2 * np.sin(2 * np.pi * (140 + 20 * seed) * t) + 0.02 * rng.standard_normal(t.size))).astype(
        np.float32
    )


@pytest.fixture
def clean_dir(tmp_path: Path) -> Path:
    d = tmp_path / "clean-speech"
    d.mkdir()
    for i, sr in enumerate([16000, 16000, 8000, 16000]):
        sf.write(d / f"s{i}.wav", _speech(sr, 1.2, i), sr)
    return d


def test_labels_follow_the_documented_mapping() -> None:
    clean = label_degradation(Degradation(), 24000.0)  # a 48 kHz (full-band) source, nothing applied
    assert clean["noi"] == 4.5 and clean["dis"] == 4.5 and clean["loud"] == 4.5
    assert clean["col"] == pytest.approx(4.5)
    assert 4.0 < label_degradation(Degradation(), 8000.0)["col"] < 4.2  # 16 kHz source: 8 kHz bandwidth
    assert clean["mos"] == pytest.approx(4.5, abs=0.01)
    nb = label_degradation(Degradation(), 4000.0)  # an 8 kHz source
    assert 2.8 < nb["col"] < 3.4 and nb["mos"] == pytest.approx(nb["col"], abs=0.01)
    # monotonic in each parameter
    noi = [label_degradation(Degradation(noise="white", snr_db=s), 8000.0)["noi"] for s in (0, 10, 20, 30)]
    assert noi == sorted(noi) and noi[0] == 1.0
    dis = [label_degradation(Degradation(loss_rate=r), 8000.0)["dis"] for r in (0.0, 0.1, 0.2, 0.3)]
    assert dis == sorted(dis, reverse=True) and dis[-1] == 1.0
    loud = [label_degradation(Degradation(level_db=g), 8000.0)["loud"] for g in (-30, -15, 0)]
    assert loud == sorted(loud)
    two = label_degradation(Degradation(noise="white", snr_db=10, loss_rate=0.1), 8000.0)
    one = label_degradation(Degradation(noise="white", snr_db=10), 8000.0)
    assert two["mos"] < one["mos"]
    for m in (1.0, 2.0, 3.3, 4.5):
        assert mos_from_r(r_from_mos(m)) == pytest.approx(m, abs=1e-6)


def test_degradations_do_what_they_say() -> None:
    sr = 16000
    x = _speech(sr, 1.0, 0).astype(np.float64)
    x *= 10 ** (-26 / 20) / np.sqrt(np.mean(x**2))
    rng = np.random.default_rng(0)
    y = apply_degradation(x, sr, Degradation(noise="white", snr_db=10.0), rng)
    snr = 10 * np.log10(np.sum(x**2) / np.sum((y - x) ** 2))
    assert snr == pytest.approx(10.0, abs=0.3)
    lp = apply_degradation(x + 0.01 * rng.standard_normal(x.size), sr, Degradation(lowpass_hz=2000.0), rng)
    spec = np.abs(np.fft.rfft(lp)) ** 2
    f = np.fft.rfftfreq(lp.size, 1 / sr)
    assert spec[f > 3000].sum() < 1e-3 * spec[f < 2000].sum()
    lost = apply_degradation(x, sr, Degradation(loss_rate=0.3), np.random.default_rng(1))
    frames = lost[: len(lost) // 320 * 320].reshape(-1, 320)
    assert 0.1 < np.mean(np.all(frames == 0, axis=1)) < 0.6
    quiet = apply_degradation(x, sr, Degradation(level_db=-20.0), rng)
    assert 20 * np.log10(np.sqrt(np.mean(quiet.astype(np.float64) ** 2))) == pytest.approx(-46, abs=0.2)


def test_generate_corpus_is_seeded_and_split_by_source(clean_dir: Path, tmp_path: Path) -> None:
    a = generate_corpus(clean_dir, tmp_path / "a", num_clips=10, seed=3)
    b = generate_corpus(clean_dir, tmp_path / "b", num_clips=10, seed=3)
    ra, rb = list(csv.DictReader(a.open())), list(csv.DictReader(b.open()))
    assert ra == rb
    assert (
        sf.read(a.parent / ra[5]["filepath_deg"])[0].tolist() == sf.read(b.parent / rb[5]["filepath_deg"])[0].tolist()
    )
    assert {"db", "con", "filepath_deg", "mos", "noi", "dis", "col", "loud", "snr_db", "loss_rate"} <= set(ra[0])
    by_source: dict[str, set[str]] = {}
    for r in ra:
        by_source.setdefault(r["source"], set()).add(r["db"])
    assert all(len(v) == 1 for v in by_source.values())
    assert {"SIM_TRAIN", "SIM_VAL", "SIM_TEST"} == set().union(*by_source.values())
    c = list(csv.DictReader(generate_corpus(clean_dir, tmp_path / "c", num_clips=10, seed=4).open()))
    assert [r["mos"] for r in c] != [r["mos"] for r in ra]


def _corpus(root: Path) -> Path:
    """A tiny NISQA-corpus layout: NISQA_Corpus/NISQA_corpus_file.csv + wavs at several rates."""
    base = root / "nisqa-corpus" / "NISQA_Corpus"
    rows = []
    for i, (db, sr, sec) in enumerate(
        [
            ("NISQA_TRAIN_SIM", 48000, 0.6),
            ("NISQA_TRAIN_SIM", 16000, 1.0),
            ("NISQA_TRAIN_LIVE", 8000, 0.8),
            ("NISQA_VAL_SIM", 16000, 0.5),
            ("NISQA_VAL_LIVE", 48000, 0.7),
            ("NISQA_TEST_FOR", 16000, 0.9),
            ("NISQA_TEST_P501", 16000, 0.4),
        ]
    ):
        rel = f"{db}/deg/c{i:05d}.wav"
        (base / db / "deg").mkdir(parents=True, exist_ok=True)
        sf.write(base / rel, _speech(sr, sec, i), sr)
        s = 1 + 0.5 * i
        rows.append(
            {
                "db": db,
                "con": i,
                "file": f"c{i:05d}.wav",
                "filepath_deg": rel,
                "filepath_ref": "",
                "mos": s,
                "noi": s - 0.1,
                "col": s - 0.2,
                "dis": s - 0.3,
                "loud": s - 0.4,
            }
        )
    with (base / "NISQA_corpus_file.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return base / "NISQA_corpus_file.csv"


def test_nisqa_corpus_datamodule_batches_with_masks(tmp_path: Path) -> None:
    _corpus(tmp_path)
    dm = SpeechQualityDataModule(root=str(tmp_path), csv_file="NISQA_Corpus/NISQA_corpus_file.csv", batch_size=3)
    dm.setup("fit")
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [3, 2, 2]
    batch = next(iter(dm.val_dataloader()))
    seg, lengths, mask, target = batch["segments"], batch["lengths"], batch["mask"], batch["target"]
    assert seg.shape[0] == 2 and seg.shape[2:] == (1, 48, 15) and seg.shape[1] == int(lengths.max())
    assert torch.equal(mask.sum(1), lengths) and lengths[0] != lengths[1]
    short = int(lengths.argmin())
    assert float(seg[short, lengths[short] :].abs().sum()) == 0.0
    # targets in score_columns order: mos, noi, dis, col, loud
    assert target[0].tolist() == pytest.approx([2.5, 2.4, 2.2, 2.3, 2.1])
    # features are cached after the first read
    assert len(dm.splits["val"]._cache) == 2


def test_any_csv_with_random_split_and_errors(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    with (tmp_path / "scores.csv").open("w") as fh:
        fh.write("path,quality\n")
        for i in range(10):
            sf.write(tmp_path / "audio" / f"{i}.flac", _speech(22050, 0.5, i), 22050)
            fh.write(f"audio/{i}.flac,{1 + i * 0.4}\n")
    dm = SpeechQualityDataModule(
        dataset=None,
        csv_file=str(tmp_path / "scores.csv"),
        path_column="path",
        score_columns=["quality"],
        sample_rate=16000,
        batch_size=4,
    )
    dm.setup()
    assert sorted(len(v) for v in dm.splits.values()) == [1, 1, 8]
    item, score = dm.splits["train"][0]
    assert item.shape[1:] == (1, 48, 15) and score.shape == (1,)
    bad = SpeechQualityDataModule(dataset=None, csv_file=str(tmp_path / "scores.csv"), score_columns=["mos"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['filepath_deg', 'mos'\]"):
        bad.setup()
    missing = SpeechQualityDataModule(root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"NISQA_Corpus\.zip"):
        missing.setup()


def test_task_trains_and_reports_pcc_rmse(clean_dir: Path, tmp_path: Path) -> None:
    import lightning.pytorch as pl

    torch.manual_seed(0)
    dm = SimulatedQualityDataModule(root=str(tmp_path), clean_dir=str(clean_dir), num_clips=12, batch_size=4)
    task = SpeechQualityTask(NISQA(dm.score_columns, dropout=0.0), optimizer=lambda p: torch.optim.Adam(p, 3e-3))
    before = [p.detach().clone() for p in task.parameters()]
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, datamodule=dm)
    assert any(not torch.equal(a, b) for a, b in zip(before, task.parameters(), strict=True))
    out = trainer.test(task, datamodule=dm, verbose=False)[0]
    for name in ("mos", "noi", "dis", "col", "loud"):
        assert f"test/pcc_{name}" in out and out[f"test/rmse_{name}"] >= 0
    mismatch = SpeechQualityTask(NISQA(("mos",)))
    with pytest.raises(ValueError, match="output_names must match the data's score_columns"):
        mismatch.training_step(collate_quality([dm.splits["train"][0]]), 0)


def test_prepare_data_fetches_and_extracts_the_corpus_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zipfile

    src = tmp_path / "src"
    csv_path = _corpus(src)  # src/nisqa-corpus/NISQA_Corpus/...
    calls: list[str] = []

    def fake_fetch(dataset_id: str, root: object = None, **_: object) -> Path:
        calls.append(dataset_id)
        folder = tmp_path / "root" / dataset_id
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(folder / "NISQA_Corpus.zip", "w") as z:
            for f in csv_path.parent.rglob("*"):
                if f.is_file():
                    z.write(f, f.relative_to(csv_path.parent.parent))
        return folder

    monkeypatch.setattr("attnkit.core.data.fetch", fake_fetch)
    dm = SpeechQualityDataModule(root=str(tmp_path / "root"), csv_file="NISQA_Corpus/NISQA_corpus_file.csv")
    dm.prepare_data()
    assert calls == ["nisqa-corpus"]
    dm.setup()
    assert len(dm.splits["train"]) == 3
