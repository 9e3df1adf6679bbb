"""SpeechQualityModel: in-memory and batched prediction, bad input errors (random weights, tiny files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from attnkit.audio.io import AudioFileError
from attnkit.audio.quality import NISQA, AudioTooShortError, SpeechQualityModel
from attnkit.audio.quality.convert import export_nisqa_checkpoint, pretrained_checkpoint


def _speechlike(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    x = env * (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size))
    return x.astype(np.float32)


@pytest.fixture
def sqm() -> SpeechQualityModel:
    torch.manual_seed(0)
    return SpeechQualityModel(NISQA().eval(), batch_size=2)


def test_predict_in_memory_matches_file_and_batch(tmp_path: Path, sqm: SpeechQualityModel) -> None:
    a, b, c = _speechlike(16000, 1.0), _speechlike(8000, 0.6, 1), _speechlike(48000, 0.8, 2)
    sf.write(tmp_path / "a.wav", a, 16000, subtype="FLOAT")
    one = sqm.predict(torch.from_numpy(a), 16000)
    assert set(one.scores) == {"mos", "noi", "dis", "col", "loud"} and one.duration_s == pytest.approx(1.0)
    assert one.mos == pytest.approx(sqm.predict_file(tmp_path / "a.wav").mos, abs=1e-6)
    assert one.mos == pytest.approx(sqm.predict(a, 16000).mos, abs=1e-6)  # numpy input
    batch = sqm.predict_batch([a, b, c], [16000, 8000, 48000])  # 2 forward passes with batch_size=2
    assert [p.sample_rate for p in batch] == [16000, 8000, 48000]
    for x, sr, p in zip([a, b, c], [16000, 8000, 48000], batch, strict=True):
        assert p.scores == pytest.approx(sqm.predict(x, sr).scores, abs=1e-5)
    # the model is reused, not reloaded: same module object
    assert sqm.model is sqm.model


@pytest.mark.parametrize(
    ("signal", "pattern"),
    [
        (torch.zeros(0), "has zero samples"),
        (torch.zeros(16000), r"is silent \(peak -inf dBFS"),
        (torch.full((16000,), 1e-5), "is silent"),
        (torch.tensor([0.1, float("nan")] * 8000), r"1 sample\(s\)|8000 sample\(s\) are NaN or infinite"),
        (torch.randint(-100, 100, (16000,)), "floating-point samples"),
        (torch.randn(1, 2, 16000), r"expected a 1-D signal \(N,\), got shape \(1, 2, 16000\)"),
    ],
)
def test_bad_signals(sqm: SpeechQualityModel, signal: torch.Tensor, pattern: str) -> None:
    with pytest.raises(AudioFileError, match=pattern):
        sqm.predict(signal, 16000)


def test_bad_rate_and_too_short(sqm: SpeechQualityModel) -> None:
    with pytest.raises(AudioFileError, match="sample_rate must be a positive integer"):
        sqm.predict(torch.randn(16000) * 0.1, 0)
    with pytest.raises(AudioTooShortError, match="too short"):
        sqm.predict(torch.randn(1000) * 0.1, 16000)


def test_multichannel_modes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = NISQA().eval()
    st = np.stack([_speechlike(16000, 0.5), _speechlike(16000, 0.5, 3)], axis=1)
    sf.write(tmp_path / "st.wav", st, 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match=r"st\.wav: has 2 channels"):
        SpeechQualityModel(model, channel="error").predict_file(tmp_path / "st.wav")
    with pytest.raises(AudioFileError, match=r"has 3 channels.*channel='mean'"):
        SpeechQualityModel(model, channel="error").predict(torch.randn(3, 16000) * 0.1, 16000)
    mean = SpeechQualityModel(model, channel="mean").predict_file(tmp_path / "st.wav")
    want = SpeechQualityModel(model).predict(st.mean(axis=1).astype(np.float32), 16000)
    assert mean.scores == pytest.approx(want.scores, abs=1e-5)
    first = SpeechQualityModel(model, channel=0).predict_file(tmp_path / "st.wav")
    assert first.scores == pytest.approx(SpeechQualityModel(model).predict(st[:, 0], 16000).scores, abs=1e-5)


def test_iter_files_skip_errors(tmp_path: Path, sqm: SpeechQualityModel) -> None:
    sf.write(tmp_path / "good.wav", _speechlike(16000, 0.5), 16000)
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 16000)
    (tmp_path / "text.wav").write_text("hello")
    files = [tmp_path / "good.wav", tmp_path / "silent.wav", tmp_path / "text.wav"]
    out = list(sqm.iter_files(files, skip_errors=True))
    assert "mos" in out[0].scores  # type: ignore[union-attr]
    assert isinstance(out[1], AudioFileError) and "silent.wav: is silent" in str(out[1])
    assert isinstance(out[2], AudioFileError) and "text.wav: not a readable audio file" in str(out[2])
    with pytest.raises(AudioFileError, match=r"silent\.wav"):
        sqm.predict_files(files)
    with pytest.raises(AudioFileError, match="contains no audio files"):
        sqm.predict_dir(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else tmp_path)


def test_from_checkpoint_and_pretrained_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    torch.manual_seed(0)
    m = NISQA(("mos",)).eval()
    path = export_nisqa_checkpoint(m, tmp_path / "mine.tar")
    loaded = SpeechQualityModel.from_checkpoint(path)
    assert loaded.output_names == ("mos",)
    x = _speechlike(16000, 0.5)
    assert loaded.predict(x, 16000).mos == pytest.approx(SpeechQualityModel(m).predict(x, 16000).mos, abs=1e-6)
    # missing weights: the error names the licence and the two ways to get them
    with pytest.raises(FileNotFoundError, match=r"nisqa-weights/nisqa\.tar is missing.*CC BY-NC-SA 4\.0.*--download"):
        pretrained_checkpoint("nisqa", tmp_path / "root")
    with pytest.raises(ValueError, match="unknown NISQA checkpoint"):
        pretrained_checkpoint("nisqa_v3", tmp_path / "root")
    # download on request: the licence is shown before anything is fetched
    calls: list[tuple] = []

    def fake_fetch(dataset_id, root=None, *, files=None, progress=True):
        calls.append((dataset_id, files))
        d = Path(root) / dataset_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    monkeypatch.setattr("attnkit.core.data.fetch", fake_fetch)
    got = pretrained_checkpoint("nisqa_mos_only", tmp_path / "root", download=True)
    assert got == tmp_path / "root" / "nisqa-weights" / "nisqa_mos_only.tar"
    assert calls == [("nisqa-weights", ["nisqa_mos_only.tar", "LICENSE_model_weights"])]
    err = capsys.readouterr().err
    assert "CC BY-NC-SA 4.0" in err and "non-commercial" in err


def test_bad_files_zero_frames_and_nan(tmp_path: Path, sqm: SpeechQualityModel) -> None:
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    x = _speechlike(16000, 0.5)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match=r"zero\.wav: has zero samples"):
        sqm.predict_file(tmp_path / "zero.wav")
    with pytest.raises(AudioFileError, match=r"nan\.wav: 1 sample\(s\) are NaN or infinite \(first at sample 100\)"):
        sqm.predict_file(tmp_path / "nan.wav")


def test_bfloat16_mode_is_close_and_checked(sqm: SpeechQualityModel) -> None:
    signals = [_speechlike(16000, 1.0), _speechlike(8000, 0.6, 1), _speechlike(48000, 0.8, 2)]
    rates = [16000, 8000, 48000]
    fast = SpeechQualityModel(sqm.model, sqm.features, precision="bfloat16")
    with torch.no_grad():
        got = torch.tensor([list(p.scores.values()) for p in fast.predict_batch(signals, rates)])
        want = torch.tensor([list(p.scores.values()) for p in sqm.predict_batch(signals, rates)])
    diff = (got - want).abs().max().item()
    assert 0 < diff < 0.05  # bfloat16 does run, and stays close
    with pytest.raises(ValueError, match="precision must be 'float32' or 'bfloat16'"):
        SpeechQualityModel(sqm.model, precision="float16")  # type: ignore[arg-type]


def test_bfloat16_on_a_cpu_without_bf16_instructions_warns(sqm: SpeechQualityModel,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from attnkit.core import runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match=r"bfloat16 instructions.*precision=\"float32\""):
        SpeechQualityModel(sqm.model, sqm.features, precision="bfloat16")
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SpeechQualityModel(sqm.model, sqm.features, precision="bfloat16")
        SpeechQualityModel(sqm.model, sqm.features)


def test_autocast_covers_only_the_cnn_in_eval() -> None:
    torch.manual_seed(0)
    model = NISQA().eval()
    seg, lengths = torch.randn(2, 5, 1, 48, 15) * 10 - 40, torch.tensor([5, 3])
    seen: list[torch.dtype] = []
    hook = model.proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(seg, lengths)
        feats = model.frame_features(seg, lengths)
    # the CNN runs in bfloat16, the projection, attention and pooling heads in float32
    assert feats.dtype == torch.bfloat16 and seen == [torch.float32] and out.dtype == torch.float32
    model.train()  # in training autocast applies everywhere (mixed-precision training)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(seg, lengths)
    hook.remove()
    assert seen == [torch.float32, torch.bfloat16]
