"""attnkit.audio.io: decoding with soundfile, channel handling, resampling, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from attnkit.audio.io import AudioFileError, list_audio_files, load_audio, read_audio, resample, to_mono


def _tone(sr: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1).astype(np.float32)


def test_read_pcm16_matches_int16_over_32768(tmp_path: Path) -> None:
    x = _tone(16000, 0.2)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="PCM_16")
    y, sr = read_audio(tmp_path / "a.wav", channel="mean")
    ints, _ = sf.read(tmp_path / "a.wav", dtype="int16")
    assert sr == 16000 and y.dtype == torch.float32 and y.shape == (3200,)
    assert torch.equal(y, torch.from_numpy(ints.astype(np.float32) / 32768))


def test_float_file_is_not_clipped(tmp_path: Path) -> None:
    x = _tone(8000, 0.1) * 5
    sf.write(tmp_path / "loud.wav", x, 8000, subtype="FLOAT")
    y, _ = read_audio(tmp_path / "loud.wav", channel="mean")
    assert float(y.abs().max()) > 1.4


def test_channels(tmp_path: Path) -> None:
    sf.write(tmp_path / "st.wav", _tone(8000, 0.1, channels=2), 8000, subtype="FLOAT")
    keep, _ = read_audio(tmp_path / "st.wav")
    assert keep.shape == (2, 800)
    mean, _ = read_audio(tmp_path / "st.wav", channel="mean")
    assert torch.allclose(mean, keep.mean(0))
    assert torch.equal(read_audio(tmp_path / "st.wav", channel=1)[0], keep[1])
    with pytest.raises(AudioFileError, match=r"st\.wav: has 2 channels.*channel='mean'"):
        read_audio(tmp_path / "st.wav", channel="error")
    with pytest.raises(AudioFileError, match="channel 5 requested"):
        to_mono(keep, 5, name="x")


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("empty.wav", b"", r"empty\.wav: the file is empty"),
        ("notes.wav", b"this is text, not audio" * 10, r"notes\.wav: not a readable audio file"),
        ("song.xyz", b"\x00\x01" * 100, r"song\.xyz: unsupported format '\.xyz'.*ffmpeg"),
    ],
)
def test_bad_files_name_the_file(tmp_path: Path, name: str, content: bytes, pattern: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(AudioFileError, match=pattern):
        read_audio(tmp_path / name)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="no such file"):
        read_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioFileError, match="is a folder"):
        read_audio(tmp_path)
    with pytest.raises(AudioFileError, match="no such folder"):
        list_audio_files(tmp_path / "nope")


def test_resample_and_list(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "b.flac", _tone(16000, 0.5), 16000)
    sf.write(tmp_path / "a.wav", _tone(16000, 0.5), 16000)
    (tmp_path / "readme.txt").write_text("x")
    files = list_audio_files(tmp_path)
    assert [f.name for f in files] == ["a.wav", "b.flac"]
    y, sr = load_audio(files[1], 8000)
    assert sr == 8000 and y.shape == (4000,)
    # a 440 Hz tone keeps its frequency after resampling
    spec = np.abs(np.fft.rfft(y.numpy()))
    assert abs(np.argmax(spec) * 8000 / len(y) - 440) < 3
    x = torch.randn(2, 100)
    assert resample(x, 16000, 16000) is x
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 16000)
