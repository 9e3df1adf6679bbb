"""CNN baseline: the short-chunk CNN of Won et al. 2020.

"Evaluation of CNN-based automatic music tagging models": 3x3 conv-BN-ReLU-maxpool blocks on a
log-mel spectrogram, global max-pool, two dense layers.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from attnkit.audio.tagging.frontend import LogMel
from attnkit.core.models import configurable

__all__ = ["ShortChunkCNN", "short_chunk_cnn_paper", "short_chunk_cnn_small"]


@configurable
class ShortChunkCNN(nn.Module):
    """VGG-like CNN with small receptive fields, trained on short chunks, max-pooled over frequency and time.

    Args:
        num_tags: number of tags ``K``.
        sample_rate: input rate in Hz.
        n_fft: FFT size.
        hop_length: hop of the mel spectrogram.
        n_mels: mel bands.
        channels: channels of each conv block (each halves frequency and time with a 2x2 max-pool).
        hidden_dim: width of the dense layer before the output.
        dropout: dropout before the output layer.

    """

    def __init__(
        self,
        num_tags: int,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 256,
        n_mels: int = 128,
        channels: tuple[int, ...] | list[int] = (128, 128, 256, 256, 256, 256, 512),
        hidden_dim: int | None = None,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        channels = tuple(int(c) for c in channels)
        hidden = hidden_dim or channels[-1]
        self.config: dict[str, Any] = {
            "num_tags": num_tags,
            "sample_rate": sample_rate,
            "n_fft": n_fft,
            "hop_length": hop_length,
            "n_mels": n_mels,
            "channels": list(channels),
            "hidden_dim": hidden_dim,
            "dropout": dropout,
        }
        self.sample_rate = sample_rate
        self.spec = LogMel(sample_rate, n_fft, hop_length, n_mels)
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            layers += [
                nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            c_in = c
        self.cnn = nn.Sequential(*layers)
        self.dense = nn.Sequential(
            nn.Linear(c_in, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_tags),
        )

    def forward(self, wav: Tensor) -> Tensor:
        """``(B, N)`` mono audio -> tag logits ``(B, K)``."""
        x = self.cnn(self.spec(wav))  # (B, C, F', T')
        return self.dense(x.amax(dim=(2, 3)))


def short_chunk_cnn_paper(num_tags: int = 50) -> ShortChunkCNN:
    """Build the paper's setting.

    128 mels, 7 blocks (128-128-256-256-256-256-512), dense 512, on 59049-sample
    (3.69 s) chunks.
    """
    return ShortChunkCNN(num_tags)


def short_chunk_cnn_small(num_tags: int = 50) -> ShortChunkCNN:
    """Build a CPU-sized variant with the front-end width of :func:`won2019_small`."""
    return ShortChunkCNN(num_tags, n_mels=96, channels=(32, 32, 64, 64, 64), hidden_dim=64, dropout=0.3)
