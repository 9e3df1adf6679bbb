"""Log-mel spectrogram front-end shared by the tagging models (computed inside the model, on any device)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LogMel(nn.Module):
    """Waveform ``(B, N)`` -> log-mel spectrogram ``(B, 1, n_mels, T)`` with ``T = N // hop_length + 1``.

    Mel power spectrogram (torchaudio), converted to dB and normalised by a learnable BatchNorm, as in
    Won et al.'s tagging models (16 kHz, 512-point FFT, hop 256, 128 mel bands, 0-8 kHz).

    Args:
        sample_rate: expected input rate.
        n_fft: FFT size.
        hop_length: hop in samples.
        n_mels: mel bands.
        f_min: lowest band edge in Hz.
        f_max: highest band edge in Hz (default ``sample_rate / 2``).

    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 256,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float | None = None,
    ) -> None:
        super().__init__()
        import torchaudio.transforms as T

        self.sample_rate, self.hop_length = sample_rate, hop_length
        self.mel = T.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
        )
        self.to_db = T.AmplitudeToDB(stype="power", top_db=None)
        self.norm = nn.BatchNorm2d(1)

    def forward(self, wav: Tensor) -> Tensor:
        """``(B, N)`` -> ``(B, 1, n_mels, T)``."""
        if wav.dim() != 2:
            raise ValueError(f"expected a batch of mono waveforms (B, N), got shape {tuple(wav.shape)}")
        with torch.autocast(device_type=wav.device.type, enabled=False):
            spec = self.to_db(self.mel(wav.float()))
        return self.norm(spec.unsqueeze(1))
