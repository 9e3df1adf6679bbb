"""Parity with the original NISQA code on ../shared/data/nisqa-reference (real weights and predictions)."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from attnkit.audio.io import read_audio
from attnkit.audio.quality import (
    NISQA,
    NISQATTS,
    AudioTooLongError,
    AudioTooShortError,
    SpeechQualityModel,
    load_nisqa_checkpoint,
    pad_segments,
)

COLS = {
    "nisqa": ["mos_pred", "noi_pred", "dis_pred", "col_pred", "loud_pred"],
    "nisqa_mos_only": ["mos_pred"],
}


def _ref(real_data_dir: Path) -> Path:
    ref = real_data_dir / "nisqa-reference"
    if not (ref / "reference_nisqa.csv").is_file() or not (real_data_dir / "nisqa-weights" / "nisqa.tar").is_file():
        pytest.skip("nisqa-reference / nisqa-weights are not in ATTNKIT_DATA_DIR")
    return ref


def test_features_match_original_intermediates(real_data_dir: Path) -> None:
    ref = _ref(real_data_dir)
    _, feats = load_nisqa_checkpoint(real_data_dir / "nisqa-weights" / "nisqa.tar")
    for stem in ("c03_clean_16k_pcm16_3s", "c08_clean_48k_pcm16_6s", "c06_clean_22k05_pcm16_6s"):
        x, sr = read_audio(ref / "wavs" / f"{stem}.wav", channel="error")
        mel = feats.melspec(x, sr).numpy()
        want = np.load(ref / "intermediates" / f"{stem}__melspec.npy")
        assert mel.shape == want.shape
        assert np.abs(mel - want).max() <= 1e-3  # dB
        n_wins = int(np.load(ref / "intermediates" / f"{stem}__n_wins.npy"))
        seg = feats(x, sr).numpy()
        segs_ref = np.load(ref / "intermediates" / f"{stem}__segments.npy")
        assert seg.shape[0] == n_wins and np.abs(seg - segs_ref[:n_wins]).max() <= 1e-3


@functools.lru_cache(maxsize=1)
def _reference_segments(ref: Path) -> tuple[list[str], list[torch.Tensor]]:
    """Features of the 30 reference wavs, computed once per session (stereo c10 averaged, as the original)."""
    _, feats = load_nisqa_checkpoint(ref.parent / "nisqa-weights" / "nisqa.tar")
    names = [r["deg"] for r in csv.DictReader((ref / "reference_nisqa.csv").open())]
    return names, [feats(*read_audio(ref / "wavs" / n, channel="mean"), name=n) for n in names]


@pytest.mark.parametrize(("name", "n_files"), [("nisqa", 30), ("nisqa_mos_only", 8)])
def test_predictions_match_original(real_data_dir: Path, name: str, n_files: int) -> None:
    ref = _ref(real_data_dir)
    model, _ = load_nisqa_checkpoint(real_data_dir / "nisqa-weights" / f"{name}.tar")
    rows = {r["deg"]: r for r in csv.DictReader((ref / f"reference_{name}.csv").open())}
    names, segs = _reference_segments(ref)
    assert len(names) == 30 and set(names) == set(rows)
    names, segs = names[:n_files], segs[:n_files]
    padded, lengths = pad_segments(segs)
    with torch.no_grad():  # batched: padding and masks in play
        got = model(padded, lengths)
    want = torch.tensor([[float(rows[n][c]) for c in COLS[name]] for n in names])
    diff = (got - want).abs().max().item()
    assert diff <= 1e-4, f"max abs difference {diff}"
    # the CNN and self-attention outputs agree too (c03 intermediates)
    seg = torch.from_numpy(np.load(ref / "intermediates" / "c03_clean_16k_pcm16_3s__segments.npy"))[:72]
    assert isinstance(model, NISQA)
    with torch.no_grad():
        cnn = model.cnn(seg).numpy()
        td = model.encode(seg[None], torch.tensor([72]))[0].numpy()
    assert np.abs(cnn - np.load(ref / "intermediates" / f"c03_clean_16k_pcm16_3s__{name}__cnn_out.npy")).max() < 1e-4
    assert np.abs(td - np.load(ref / "intermediates" / f"c03_clean_16k_pcm16_3s__{name}__td_out.npy")).max() < 1e-4


def test_bfloat16_mode_within_0_01_of_original(real_data_dir: Path) -> None:
    ref = _ref(real_data_dir)
    model, _ = load_nisqa_checkpoint(real_data_dir / "nisqa-weights" / "nisqa.tar")
    rows = {r["deg"]: r for r in csv.DictReader((ref / "reference_nisqa.csv").open())}
    names, segs = _reference_segments(ref)
    padded, lengths = pad_segments(segs)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # what precision="bfloat16" does
        got = model(padded, lengths)
    want = torch.tensor([[float(rows[n][c]) for c in COLS["nisqa"]] for n in names])
    diff = (got - want).abs().max().item()
    assert 1e-4 < diff <= 0.01, f"max abs difference {diff}"


def test_predict_api_matches_original_on_files(real_data_dir: Path) -> None:
    ref = _ref(real_data_dir)
    sqm = SpeechQualityModel.from_checkpoint(real_data_dir / "nisqa-weights" / "nisqa.tar", channel="mean")
    rows = {r["deg"]: r for r in csv.DictReader((ref / "reference_nisqa.csv").open())}
    files = [
        "c04_clean_8k_pcm16_7s.wav",
        "c10_clean_16k_pcm16_stereo_3s.wav",
        "n13_white_snr00_16k_pcm16_8s.wav",
    ]
    for f, p in zip(files, sqm.predict_files([ref / "wavs" / f for f in files]), strict=True):
        want = [float(rows[f][c]) for c in COLS["nisqa"]]
        assert np.abs(np.array(list(p.scores.values())) - want).max() <= 1e-4
    x, sr = read_audio(ref / "wavs" / files[0])
    assert abs(sqm.predict(x[0], sr).mos - float(rows[files[0]]["mos_pred"])) <= 1e-4


def test_edge_files_rejected_like_original(real_data_dir: Path) -> None:
    ref = _ref(real_data_dir)
    sqm = SpeechQualityModel.from_checkpoint(real_data_dir / "nisqa-weights" / "nisqa.tar")
    for f in ("e90_too_short_16k_2079samples.wav", "e91_too_short_16k_2239samples.wav"):
        with pytest.raises(AudioTooShortError, match=f):
            sqm.predict_file(ref / "wavs_edge" / f)
    with pytest.raises(AudioTooLongError, match="1392 segments"):
        sqm.predict_file(ref / "wavs_edge" / "e92_too_long_8k_pcm16_56s.wav")


def test_tts_checkpoint_loads_and_predicts(real_data_dir: Path) -> None:
    path = real_data_dir / "nisqa-weights" / "nisqa_tts.tar"
    if not path.is_file():
        pytest.skip("nisqa_tts.tar not present")
    model, feats = load_nisqa_checkpoint(path)
    assert isinstance(model, NISQATTS) and feats.seg_hop == 1 and feats.fmax == 8000
    assert sum(p.numel() for p in model.parameters()) == sum(
        v.numel()
        for k, v in torch.load(path, weights_only=True, map_location="cpu")["model_state_dict"].items()
        if "running" not in k and "num_batches" not in k
    )
    x, sr = read_audio(_ref(real_data_dir) / "wavs" / "c01_clean_16k_pcm16_12s.wav", channel="error")
    segs = [feats(x[: sr * 4], sr), feats(x[: sr * 2], sr)]
    padded, lengths = pad_segments(segs)
    with torch.no_grad():
        both = model(padded, lengths)
        alone = model(segs[1][None], lengths[1:])
    assert torch.isfinite(both).all() and 1.0 < float(both[0]) < 5.5
    torch.testing.assert_close(both[1], alone[0], atol=1e-5, rtol=0)
