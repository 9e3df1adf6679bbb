"""Audio reading shared by the audio applications: soundfile decoding, torchaudio resampling.

torchaudio's own file I/O needs FFmpeg, which attnkit does not depend on: files are decoded with
:mod:`soundfile` (libsndfile: WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF, ...) and torchaudio is used only for
transforms and :func:`resample`.

Stable API (other attnkit.audio sub-packages import it): :class:`AudioFileError`, :func:`read_audio`,
:func:`load_audio`, :func:`resample`, :func:`to_mono`, :func:`list_audio_files`, :data:`AUDIO_EXTENSIONS`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from attnkit.core.errors import DataFormatError

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioFileError",
    "ChannelMode",
    "list_audio_files",
    "load_audio",
    "read_audio",
    "resample",
    "to_mono",
]

#: File extensions libsndfile decodes (lower case, with the dot).
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".wav",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".aiff",
        ".aif",
        ".aifc",
        ".au",
        ".snd",
        ".caf",
        ".w64",
        ".rf64",
        ".sd2",
        ".voc",
        ".htk",
        ".nist",
        ".sph",
        ".ircam",
        ".mat",
        ".xi",
        ".wve",
        ".paf",
    }
)

#: How to turn a multi-channel file into one signal: ``"keep"`` returns all channels ``(C, N)``,
#: ``"mean"`` averages them (librosa's ``to_mono``), ``"error"`` refuses multi-channel input, an ``int``
#: selects that channel (0-based).
ChannelMode = Literal["keep", "mean", "error"] | int


class AudioFileError(DataFormatError):
    """An audio file cannot be used; the message names the file, the problem and what to do."""


def _decode(path: Path) -> tuple[np.ndarray, int]:
    if not path.exists():
        raise AudioFileError(f"{path}: no such file")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioFileError(f"{path}: the file is empty (0 bytes)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        ext = path.suffix.lower()
        if ext and ext not in AUDIO_EXTENSIONS:
            raise AudioFileError(
                f"{path}: unsupported format {ext!r} ({e}). attnkit reads audio with libsndfile "
                f"({', '.join(sorted(AUDIO_EXTENSIONS))}); convert it first, e.g. "
                f"`ffmpeg -i {path.name} {path.stem}.wav`"
            ) from e
        raise AudioFileError(
            f"{path}: not a readable audio file ({e}). Check that it is audio and not truncated; libsndfile "
            f"decodes {', '.join(sorted(AUDIO_EXTENSIONS))}"
        ) from e
    return data.T, int(sr)


def to_mono(waveform: Tensor, channel: ChannelMode = "mean", *, name: str = "waveform") -> Tensor:
    """Reduce a ``(C, N)`` signal according to ``channel`` (see :data:`ChannelMode`).

    Args:
        waveform: ``(N,)`` or ``(C, N)``.
        channel: ``"mean"``, ``"error"``, ``"keep"`` or a channel index.
        name: used in error messages (a file name).

    Returns:
        ``(N,)`` (``(C, N)`` for ``"keep"``).

    """
    if waveform.dim() == 1:
        return waveform.unsqueeze(0) if channel == "keep" else waveform
    if waveform.dim() != 2:
        raise AudioFileError(
            f"{name}: expected a (N,) or (channels, N) signal, got shape {tuple(waveform.shape)}"
        )
    c = waveform.shape[0]
    if channel == "keep":
        return waveform
    if channel == "mean":
        return waveform.mean(dim=0)
    if channel == "error":
        if c == 1:
            return waveform[0]
        raise AudioFileError(
            f"{name}: has {c} channels but a single-channel signal is expected; pass channel='mean' to "
            "average the channels (what the original NISQA does) or channel=K to pick one "
            "(CLI: --channel mean|K)"
        )
    if isinstance(channel, int) and not isinstance(channel, bool):
        if not 0 <= channel < c:
            raise AudioFileError(f"{name}: channel {channel} requested but the signal has {c} channel(s)")
        return waveform[channel]
    raise ValueError(f"channel must be 'keep', 'mean', 'error' or an int, got {channel!r}")


def read_audio(path: str | os.PathLike[str], *, channel: ChannelMode = "keep") -> tuple[Tensor, int]:
    """Decode an audio file at its native sample rate, as float32 (PCM16 -> int16 / 32768).

    Float files are returned as stored (values above 1.0 are not clipped).

    Args:
        path: the file.
        channel: see :data:`ChannelMode`; ``"keep"`` returns ``(C, N)``, the others ``(N,)``.

    Returns:
        ``(waveform, sample_rate)``.

    Raises:
        AudioFileError: missing, empty, non-audio or unsupported file, or a channel problem.

    """
    p = Path(path)
    data, sr = _decode(p)
    return to_mono(torch.from_numpy(np.ascontiguousarray(data)), channel, name=str(p)), sr


def resample(waveform: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """Resample along the last dimension with :func:`torchaudio.functional.resample` (windowed sinc).

    Args:
        waveform: ``(..., N)``.
        orig_sr: its sample rate.
        new_sr: the wanted sample rate.

    Returns:
        ``(..., N * new_sr / orig_sr)``; the input itself when the rates are equal.

    """
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return waveform
    import torchaudio.functional as AF

    return AF.resample(waveform, orig_sr, new_sr)


def load_audio(
    path: str | os.PathLike[str], sample_rate: int | None = None, *, channel: ChannelMode = "mean"
) -> tuple[Tensor, int]:
    """:func:`read_audio`, then resample to ``sample_rate`` (``None`` keeps the file's rate)."""
    x, sr = read_audio(path, channel=channel)
    if sample_rate is not None and sample_rate != sr:
        x, sr = resample(x, sr, sample_rate), sample_rate
    return x, sr


def list_audio_files(
    folder: str | os.PathLike[str], *, recursive: bool = True, extensions: Iterable[str] | None = None
) -> list[Path]:
    """Audio files under ``folder`` (by extension), sorted by path.

    Raises:
        AudioFileError: the folder does not exist.

    """
    root = Path(folder)
    if not root.is_dir():
        raise AudioFileError(f"{root}: no such folder")
    exts = {e.lower() for e in (extensions or AUDIO_EXTENSIONS)}
    it = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in exts)
