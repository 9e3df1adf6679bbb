"""NISQA input features: absolute log-mel spectrogram cut into overlapping 15-frame segments.

Reproduces the original NISQA pipeline (librosa ``melspectrogram`` + ``amplitude_to_db`` +
``segment_specs``) with torch and torchaudio:

* STFT at the signal's own rate: ``hop = int(0.01 * sr)``, ``win = int(0.02 * sr)`` (truncated),
  ``n_fft = 4096`` at every rate, periodic Hann window of length ``win`` centred in ``n_fft``,
  ``center=True`` with reflect padding of ``n_fft // 2`` (numpy semantics, so signals shorter than the
  padding work), magnitude.
* Slaney mel filterbank (48 bands, 0..20 kHz, area-normalised, :func:`torchaudio.functional.melscale_fbanks`);
  bands above Nyquist are empty.
* ``10 log10(max(1e-8, M^2))`` with ``ref = 1``, floored at the file's global maximum minus 80 dB
  (:func:`torchaudio.functional.amplitude_to_DB`).
* Segments of 15 frames with a hop of 4 frames; ``n_wins = ceil((T - 14) / 4)``; trailing frames dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torchaudio.functional as AF
from torch import Tensor

from attnkit.core.errors import DataFormatError

__all__ = ["AudioTooLongError", "AudioTooShortError", "NISQAFeatures", "pad_segments"]


class AudioTooShortError(DataFormatError):
    """The signal gives fewer mel frames than one segment needs."""


class AudioTooLongError(DataFormatError):
    """The signal gives more segments than ``max_segments``."""


def _reflect_pad(x: Tensor, pad: int) -> Tensor:
    """Numpy ``np.pad(x, pad, mode="reflect")`` on the last dim, also when ``pad >= len(x)``."""
    n = x.shape[-1]
    if n == 1:
        return x.expand(*x.shape[:-1], n + 2 * pad).clone()
    if pad < n:
        return torch.nn.functional.pad(x.unsqueeze(0), (pad, pad), mode="reflect").squeeze(0)
    period = 2 * (n - 1)
    idx = torch.arange(-pad, n + pad, device=x.device).remainder(period)
    idx = torch.where(idx >= n, period - idx, idx)
    return x[..., idx]


@lru_cache(maxsize=32)
def _mel_fb(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> Tensor:
    if sr % 2:  # torchaudio's frequency grid uses sr // 2; the FFT bins of an odd rate end at sr / 2
        fb = _slaney_fb(sr, n_fft, n_mels, fmin, fmax)
    else:
        import warnings

        with warnings.catch_warnings():  # bands above Nyquist are empty by design (fixed fmax)
            warnings.simplefilter("ignore")
            fb = AF.melscale_fbanks(n_fft // 2 + 1, fmin, fmax, n_mels, sr, norm="slaney", mel_scale="slaney")
    return fb.T.contiguous().float()  # (n_mels, n_freqs)


@lru_cache(maxsize=32)
def _used_bins(sr: int, n_fft: int, n_mels: int, fmax: float) -> int:
    """Number of leading FFT bins with a non-zero weight in the mel filterbank (at least 1)."""
    nz = (_mel_fb(sr, n_fft, n_mels, 0.0, fmax) != 0).any(0).nonzero()
    return int(nz[-1, 0]) + 1 if nz.numel() else 1


def _slaney_fb(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> Tensor:
    freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1, dtype=torch.float64)
    f_min_mel = AF.functional._hz_to_mel(fmin, mel_scale="slaney")
    f_max_mel = AF.functional._hz_to_mel(fmax, mel_scale="slaney")
    m_pts = torch.linspace(f_min_mel, f_max_mel, n_mels + 2, dtype=torch.float64)
    f_pts = AF.functional._mel_to_hz(m_pts, mel_scale="slaney")
    fb = AF.functional._create_triangular_filterbank(freqs, f_pts)
    enorm = 2.0 / (f_pts[2 : n_mels + 2] - f_pts[:n_mels])
    return fb * enorm.unsqueeze(0)


@dataclass(frozen=True)
class NISQAFeatures:
    """Log-mel segments as the original NISQA computes them (settings from the checkpoint's ``args``).

    Args:
        n_fft: FFT size at every sample rate (``ms_n_fft``).
        hop_length: hop in seconds (``ms_hop_length``); samples are ``int(hop_length * sr)``.
        win_length: window in seconds (``ms_win_length``).
        n_mels: mel bands (``ms_n_mels``).
        fmax: upper edge of the filterbank in Hz (``ms_fmax``), independent of the rate.
        seg_length: frames per segment (``ms_seg_length``).
        seg_hop: frames between segment starts (``ms_seg_hop_length``).
        max_segments: most segments a file may give (``ms_max_segments``); ``None`` for no limit.
        stft_dtype: precision of the STFT. float32 (default) is about 5x faster than float64 (what the
            original runs, through numpy) and moves the log-mel by < 1e-3 dB and the predictions by about
            1e-6; pass ``torch.float64`` for the closest match to the original.

    """

    n_fft: int = 4096
    hop_length: float = 0.01
    win_length: float = 0.02
    n_mels: int = 48
    fmax: float = 20000.0
    seg_length: int = 15
    seg_hop: int = 4
    max_segments: int | None = 1300
    stft_dtype: torch.dtype = torch.float32

    def frame_params(self, sample_rate: int) -> tuple[int, int]:
        """``(hop, win)`` in samples at ``sample_rate`` (int() truncation as in the original)."""
        return int(sample_rate * self.hop_length), int(sample_rate * self.win_length)

    def min_samples(self, sample_rate: int) -> int:
        """Fewest samples that give one segment: ``(seg_length - 1) * hop``."""
        return (self.seg_length - 1) * self.frame_params(sample_rate)[0]

    def melspec(self, waveform: Tensor, sample_rate: int) -> Tensor:
        """Absolute log-mel spectrogram.

        Args:
            waveform: ``(N,)`` float signal at ``sample_rate``.
            sample_rate: in Hz.

        Returns:
            ``(n_mels, T)`` float32 dB, ``T = 1 + N // hop``.

        """
        if waveform.dim() != 1:
            raise ValueError(f"melspec takes a 1-D signal (N,), got shape {tuple(waveform.shape)}")
        hop, win = self.frame_params(sample_rate)
        if hop < 1 or win < 1 or win > self.n_fft:
            raise ValueError(f"sample rate {sample_rate} Hz gives hop={hop}, win={win} samples; n_fft={self.n_fft}")
        x = _reflect_pad(waveform.to(self.stft_dtype), self.n_fft // 2)
        window = torch.hann_window(win, periodic=True, dtype=self.stft_dtype, device=x.device)
        # Frame t is x[t*hop : t*hop + n_fft] times the window zero-padded to n_fft at (n_fft - win)//2;
        # only the window's support is non-zero, so transform those `win` samples zero-padded to n_fft: the
        # magnitude is the same (a circular shift changes only the phase) at a fraction of the cost.
        off = (self.n_fft - win) // 2
        n_frames = 1 + (x.shape[-1] - self.n_fft) // hop
        frames = x[off : off + (n_frames - 1) * hop + win].unfold(0, win, hop)
        fb = _mel_fb(sample_rate, self.n_fft, self.n_mels, 0.0, float(self.fmax)).to(x.device)
        used = _used_bins(sample_rate, self.n_fft, self.n_mels, float(self.fmax))  # bins above fmax weigh 0
        spec = torch.view_as_real(torch.fft.rfft(frames * window, n=self.n_fft)[:, :used])  # (T, used, 2)
        power = spec.reshape(spec.shape[0], -1).square()  # re^2, im^2 interleaved (a view, then one pass)
        spec = (power[:, 0::2] + power[:, 1::2]).sqrt_().float()  # |X| (T, used); faster than complex abs()
        mel = (spec @ fb[:, :used].T).T  # (n_mels, T)
        return AF.amplitude_to_DB((mel * mel)[None, None], 10.0, 1e-8, 0.0, top_db=80.0)[0, 0]

    def num_segments(self, num_frames: int) -> int:
        """Segments from ``num_frames`` mel frames: ``ceil((T - seg_length + 1) / seg_hop)``."""
        return max(0, math.ceil((num_frames - self.seg_length + 1) / self.seg_hop))

    def segments(self, spec: Tensor) -> Tensor:
        """Cut a ``(n_mels, T)`` log-mel into ``(n_wins, 1, n_mels, seg_length)`` segments."""
        n = self.num_segments(spec.shape[-1])
        return (
            spec[:, : (n - 1) * self.seg_hop + self.seg_length]
            .unfold(1, self.seg_length, self.seg_hop)
            .permute(1, 0, 2)
            .unsqueeze(1)
            .contiguous()
        )

    def __call__(self, waveform: Tensor, sample_rate: int, *, name: str = "waveform") -> Tensor:
        """Waveform ``(N,)`` -> segments ``(n_wins, 1, n_mels, seg_length)``.

        Raises:
            AudioTooShortError: fewer than ``(seg_length - 1) * hop`` samples.
            AudioTooLongError: more than ``max_segments`` segments.

        """
        n = waveform.shape[-1]
        hop, _ = self.frame_params(sample_rate)
        need = self.min_samples(sample_rate)
        if n < need:
            raise AudioTooShortError(
                f"{name}: too short for NISQA: {n} samples ({n / sample_rate:.3f} s) at {sample_rate} Hz; "
                f"at least {need} samples ({need / sample_rate:.3f} s, one {self.seg_length}-frame segment) "
                "are needed"
            )
        n_wins = self.num_segments(1 + n // hop)
        if self.max_segments is not None and n_wins > self.max_segments:
            longest = ((self.max_segments - 1) * self.seg_hop + self.seg_length - 1) * hop
            raise AudioTooLongError(
                f"{name}: too long for NISQA: {n / sample_rate:.2f} s gives {n_wins} segments, more than "
                f"max_segments={self.max_segments} (about {longest / sample_rate:.1f} s, what the model was "
                "built for); cut the file into shorter parts or raise max_segments"
            )
        return self.segments(self.melspec(waveform, sample_rate))


def pad_segments(items: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Zero-pad segments ``(L_i, 1, M, S)`` to ``(B, L_max, 1, M, S)``; also return lengths ``(B,)``."""
    lengths = torch.tensor([t.shape[0] for t in items], dtype=torch.long)
    out = items[0].new_zeros((len(items), int(lengths.max()), *items[0].shape[1:]))
    for i, t in enumerate(items):
        out[i, : t.shape[0]] = t
    return out, lengths
