"""NISQA-TTS (Mittag & Möller 2020): the CNN-LSTM naturalness model of the released ``nisqa_tts.tar``.

Kept so that the converter can load every released checkpoint. Unlike :class:`~attnkit.audio.quality.NISQA`
it has no self-attention: a framewise CNN with fixed 2x2 max pooling and a 20-unit projection, a
bidirectional LSTM over segments, and a linear output on the last forward and first backward state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnkit.core.models import configurable

__all__ = ["NISQATTS", "StandardCNN"]


class StandardCNN(nn.Module):
    """Six 3x3 conv + BatchNorm + ReLU blocks with 2x2 max pooling, for ``(1, 48, 15)`` segments.

    Pooling: after conv1 (time padded by one on each side), conv2 and conv4: ``48x15 -> 24x8 -> 12x4 -> 6x2``.

    Shapes:
        ``(N, 1, 48, 15) -> (N, fc_out)`` (``(N, 768)`` without ``fc_out``).
    """

    def __init__(
        self, channels: tuple[int, int, int] = (16, 32, 64), dropout: float = 0.2, fc_out: int | None = 20
    ) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.conv4 = nn.Conv2d(c3, c3, 3, padding=1)
        self.conv5 = nn.Conv2d(c3, c3, 3, padding=1)
        self.conv6 = nn.Conv2d(c3, c3, 3, padding=1)
        self.bn1, self.bn2 = nn.BatchNorm2d(c1), nn.BatchNorm2d(c2)
        self.bn3, self.bn4, self.bn5, self.bn6 = (nn.BatchNorm2d(c3) for _ in range(4))
        self.dropout = nn.Dropout2d(dropout)
        flat = c3 * 6 * 2
        self.fc_out = nn.Linear(flat, fc_out) if fc_out else None
        self.out_dim = fc_out or flat

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 1, 48, 15) -> (N, out_dim)``."""
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2, 2, padding=(0, 1))
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2, 2)
        x = self.dropout(x)
        x = self.dropout(F.relu(self.bn3(self.conv3(x))))
        x = F.max_pool2d(F.relu(self.bn4(self.conv4(x))), 2, 2)
        x = self.dropout(x)
        x = self.dropout(F.relu(self.bn5(self.conv5(x))))
        x = F.relu(self.bn6(self.conv6(x))).flatten(1)
        return self.fc_out(x) if self.fc_out is not None else x


@configurable
class NISQATTS(nn.Module):
    """CNN + bidirectional LSTM + last-step pooling (released ``nisqa_tts.tar``, naturalness MOS).

    Args:
        lstm_hidden: LSTM width per direction.
        fc_out: width of the CNN's output projection.
        dropout: CNN ``Dropout2d`` rate.

    Shapes:
        ``segments (B, L, 1, 48, 15)``, ``lengths (B,)`` -> ``(B, 1)``.

    """

    def __init__(self, lstm_hidden: int = 128, fc_out: int = 20, dropout: float = 0.2) -> None:
        super().__init__()
        self.output_names: tuple[str, ...] = ("mos",)
        self.cnn = StandardCNN(dropout=dropout, fc_out=fc_out)
        self.lstm = nn.LSTM(self.cnn.out_dim, lstm_hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * lstm_hidden, 1)

    def forward(self, segments: Tensor, lengths: Tensor) -> Tensor:
        """Predict ``(B, 1)`` from padded segments ``(B, L, 1, 48, 15)`` and lengths ``(B,)``."""
        if segments.dim() == 4:
            segments = segments.unsqueeze(2)
        b, seq = segments.shape[:2]
        lengths = lengths.long().cpu()
        valid = torch.arange(seq)[None, :] < lengths[:, None]
        feats = self.cnn(segments[valid.to(segments.device)])
        x = feats.new_zeros(b, seq, feats.shape[-1])
        x[valid.to(segments.device)] = feats
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=seq)
        h = self.lstm.hidden_size
        last_fwd = out[torch.arange(b), lengths.to(out.device) - 1, :h]
        first_bwd = out[:, 0, h:]
        return self.head(torch.cat([last_fwd, first_bwd], dim=1))
