"""Bring your own audio: formats, rates, channels, file lists, bad files, short clips, baselines."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import soundfile as sf
import torch

from attnkit.audio import NISQA, SpeechQualityModel
from attnkit.audio.cli import main
from attnkit.audio.io import AudioFileError, read_audio
from attnkit.audio.quality import SpeechQualityDataModule, SpeechQualityTask
from attnkit.audio.quality.baselines import quality_baselines
from attnkit.audio.tagging import MusicTaggingDataModule, MusicTaggingTask
from attnkit.audio.tagging.synthetic import write_tone_collection

from .test_tagging_model import tiny_attn


def _speech(sr: int, seconds: float, seed: int = 0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))
    return np.stack([x * (1 + 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.fixture
def sqm() -> SpeechQualityModel:
    torch.manual_seed(0)
    return SpeechQualityModel(NISQA().eval())


FORMATS = [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS")]
if "MP3" in sf.available_formats():  # libsndfile >= 1.1 reads and writes MP3
    FORMATS.append(("mp3", "MP3", "MPEG_LAYER_III"))


@pytest.mark.parametrize(("ext", "fmt", "subtype"), FORMATS)
def test_formats_rates_and_stereo(tmp_path: Path, sqm: SpeechQualityModel, ext: str, fmt: str, subtype: str) -> None:
    x = _speech(24000, 1.0, channels=2)
    path = tmp_path / f"mushra.{ext}"
    sf.write(path, x, 24000, format=fmt, subtype=subtype)
    wav, sr = read_audio(path)
    assert sr == 24000 and wav.shape[0] == 2
    p = sqm.predict_file(path)  # stereo is averaged by default, as in the original NISQA
    assert p.sample_rate == 24000 and np.isfinite(p.mos)
    assert p.scores == pytest.approx(sqm.predict(wav.mean(0), 24000).scores, abs=1e-5)


def test_soundfile_layout_and_float_rates(sqm: SpeechQualityModel) -> None:
    x = _speech(16000, 1.0, channels=2)  # (N, C), as soundfile.read returns it
    want = sqm.predict(torch.from_numpy(x.T.copy()), 16000)
    got = sqm.predict(x, 16000.0)
    assert got.scores == pytest.approx(want.scores, abs=1e-6) and got.duration_s == pytest.approx(1.0)
    with pytest.raises(AudioFileError, match=r"sample_rate must be a positive integer in Hz, got 16000\.5"):
        sqm.predict(x, 16000.5)


def test_short_clip_warns_with_the_minimum(sqm: SpeechQualityModel) -> None:
    with pytest.warns(UserWarning, match=r"0\.50 s is shorter than 3 s; NISQA was trained on 6-12 s"):
        p = sqm.predict(_speech(16000, 0.5)[:, 0], 16000)
    assert "shorter" in p.warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sqm.predict(_speech(16000, 3.0)[:, 0], 16000).warning == ""


def test_predict_dir_and_csv_list_go_on_past_a_bad_file(tmp_path: Path, sqm: SpeechQualityModel) -> None:
    d = tmp_path / "test_set"
    d.mkdir()
    sf.write(d / "a.wav", _speech(16000, 1.0), 16000)
    sf.write(d / "b.flac", _speech(48000, 1.0, 1), 48000)
    (d / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(AudioFileError, match=r"broken\.wav: not a readable audio file"):
        sqm.predict_dir(d)
    out = sqm.predict_dir(d, skip_errors=True)
    assert [Path(p.source).name for p in out] == ["a.wav", "b.flac", "broken.wav"]
    assert out[0].ok and not out[2].ok and "not a readable audio file" in out[2].error and out[2].scores == {}
    (tmp_path / "list.csv").write_text("filepath_deg,mos\ntest_set/b.flac,3.1\ntest_set/a.wav,4.0\n")
    listed = sqm.predict_csv(tmp_path / "list.csv")
    assert [Path(p.source).name for p in listed] == ["b.flac", "a.wav"]
    assert listed[1].scores == pytest.approx(out[0].scores, abs=1e-5)  # other batch, other padding


def test_cli_csv_list_input(tmp_path: Path, sqm: SpeechQualityModel) -> None:
    from attnkit.audio.quality.convert import export_nisqa_checkpoint

    weights = tmp_path / "w.tar"
    export_nisqa_checkpoint(sqm.model, weights)
    sf.write(tmp_path / "a.wav", _speech(16000, 1.0), 16000)
    (tmp_path / "files.csv").write_text("deg_file\na.wav\nmissing.wav\n")
    out = tmp_path / "out.csv"
    rc = main(["quality", "--input-csv", str(tmp_path / "files.csv"), "--input-column", "deg_file",
               "--weights", str(weights), "--csv", str(out)])
    assert rc == 1
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["file"]).name for r in rows] == ["a.wav", "missing.wav"]
    assert "no such file" in rows[1]["error"] and float(rows[0]["mos"]) == sqm.predict_file(tmp_path / "a.wav").mos
    assert main(["quality", "--input-csv", str(tmp_path / "files.csv"), "--weights", str(weights)]) == 2


def _scored_corpus(root: Path) -> Path:
    """A MUSHRA-style listening test: 24 kHz stereo files, one CSV of file + score, two databases."""
    rows = ["file,score,db"]
    for i in range(12):
        db = "train" if i < 6 else ("val" if i < 8 else ("testA" if i < 10 else "testB"))
        sf.write(root / f"c{i}.wav", _speech(24000, 0.6, seed=i, channels=2), 24000)
        rows.append(f"c{i}.wav,{1 + 0.3 * i},{db}")
    (root / "scores.csv").write_text("\n".join(rows) + "\n")
    return root / "scores.csv"


def test_quality_datamodule_on_a_users_csv_with_baselines(tmp_path: Path) -> None:
    dm = SpeechQualityDataModule(dataset=None, csv_file=str(_scored_corpus(tmp_path)), path_column="file",
                                 score_columns=["score"], split_column="db", train_splits=["train"],
                                 val_splits=["val"], test_splits=["testA", "testB"], batch_size=4)
    torch.manual_seed(0)
    task = SpeechQualityTask(NISQA(("score",)), baselines=True)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    res = trainer.test(task, dm, verbose=False)[0]
    test = torch.tensor([1 + 0.3 * i for i in range(8, 12)])
    train_mean = torch.tensor([1 + 0.3 * i for i in range(6)]).mean()
    assert res["test/baseline_train_mean/rmse_score"] == pytest.approx(float((test - train_mean).pow(2).mean().sqrt()))
    assert res["test/baseline_dataset_mean/rmse_score"] == pytest.approx(0.15, abs=1e-6)  # within-database spread
    assert "test/baseline_dataset_mean/pcc_score" in res and "test/pcc_score" in res
    one = quality_baselines(torch.ones(3, 1), torch.tensor([[1.0], [2.0]]))
    assert torch.isnan(one["dataset_mean/pcc"]).all()  # one database: a constant, no correlation


def test_quality_unreadable_file_named(tmp_path: Path) -> None:
    csv_path = _scored_corpus(tmp_path)
    (tmp_path / "c9.wav").write_bytes(b"not audio")
    dm = SpeechQualityDataModule(dataset=None, csv_file=str(csv_path), path_column="file", score_columns=["score"],
                                 split_column="db", train_splits=["train"], val_splits=["val"],
                                 test_splits=["testA"], batch_size=4)
    dm.setup()
    with pytest.raises(AudioFileError, match=r"c9\.wav: not a readable audio file"):
        next(iter(dm.test_dataloader()))


def test_tagging_prior_baseline(tmp_path: Path) -> None:
    write_tone_collection(tmp_path / "tagging-scores", (8, 4, 6), seconds=0.5)
    dm = MusicTaggingDataModule("tagging-scores", root=str(tmp_path), chunk_seconds=0.5, eval_batch_size=8)
    dm.setup("test")
    task = MusicTaggingTask(tiny_attn(dm.num_tags), tags=dm.tag_names, baselines=True)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    res = trainer.test(task, dm, verbose=False)[0]
    assert res["test/baseline_prior/roc_auc"] == pytest.approx(0.5)
    index = {t: i for i, t in enumerate(dm.tag_names)}
    y = torch.zeros(len(dm.splits["test"]), dm.num_tags)
    for r, clip in enumerate(dm.splits["test"]):
        for t in clip.tags:
            y[r, index[t]] = 1
    prevalence = y.mean(0)
    defined = (prevalence > 0) & (prevalence < 1)
    assert res["test/baseline_prior/pr_auc"] == pytest.approx(float(prevalence[defined].mean()), abs=1e-6)


def test_audio_tasks_re_estimate_batch_norm_on_their_training_batches(tmp_path: Path) -> None:
    # forward_batch takes each task's own training batch, so PreciseBatchNorm works on both audio tasks (NISQA's
    # CNN folds its batch norms into the convolutions in eval mode: the re-estimation must run in train mode)
    from attnkit.core.tasks import recalibrate_batch_norm

    def stats(m: torch.nn.Module) -> list[torch.Tensor]:
        return [b.running_var.clone() for b in m.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]

    (tmp_path / "q").mkdir()
    quality = SpeechQualityDataModule(dataset=None, csv_file=str(_scored_corpus(tmp_path / "q")), path_column="file",
                                      score_columns=["score"], split_column="db", train_splits=["train"],
                                      val_splits=["val"], test_splits=["testA"], batch_size=4)
    write_tone_collection(tmp_path / "tagging-scores", (8, 4, 6), seconds=0.5)
    tagging = MusicTaggingDataModule("tagging-scores", root=str(tmp_path), chunk_seconds=0.5, batch_size=4)
    for dm, make in ((quality, lambda: SpeechQualityTask(NISQA(("score",)))),
                     (tagging, lambda: MusicTaggingTask(tiny_attn(tagging.num_tags), tags=tagging.tag_names))):
        dm.setup("fit")
        torch.manual_seed(0)
        task = make()
        before = stats(task)
        n = recalibrate_batch_norm(task, dm.train_dataloader(), task.forward_batch, num_batches=2)
        assert n == len(before) > 0
        assert any(not torch.equal(a, b) for a, b in zip(before, stats(task), strict=True))
