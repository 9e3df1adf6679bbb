"""In-memory and file inference with a loaded NISQA model: :class:`SpeechQualityModel`."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from attnkit.audio.io import AudioFileError, ChannelMode, list_audio_files, read_audio, to_mono
from attnkit.audio.quality.features import NISQAFeatures, pad_segments

__all__ = ["QualityPrediction", "SpeechQualityModel", "check_waveform"]


@dataclass(frozen=True)
class QualityPrediction:
    """Scores for one signal, keyed by output name (``mos``, ``noi``, ``dis``, ``col``, ``loud``)."""

    scores: dict[str, float]
    duration_s: float
    sample_rate: int
    source: str = ""

    def __getitem__(self, key: str) -> float:
        return self.scores[key]

    @property
    def mos(self) -> float:
        """Overall MOS."""
        return self.scores["mos"]


def check_waveform(waveform: Tensor, sample_rate: int, *, name: str = "waveform", silence_dbfs: float = -80.0) -> None:
    """Raise :class:`~attnkit.audio.io.AudioFileError` for empty, non-finite or silent 1-D signals.

    Args:
        waveform: ``(N,)``.
        sample_rate: in Hz; must be positive.
        name: the file or signal name for messages.
        silence_dbfs: a signal whose peak lies below this level (dB re full scale 1.0) counts as silent.

    """
    if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise AudioFileError(f"{name}: sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    if waveform.dim() != 1:
        raise AudioFileError(f"{name}: expected a 1-D signal (N,), got shape {tuple(waveform.shape)}")
    if waveform.numel() == 0:
        raise AudioFileError(f"{name}: has zero samples (empty audio)")
    if not waveform.dtype.is_floating_point:
        raise AudioFileError(
            f"{name}: expected floating-point samples in [-1, 1], got {waveform.dtype}; "
            "convert integers with x / 32768 (PCM16)"
        )
    finite = torch.isfinite(waveform)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        first = int((~finite).nonzero()[0, 0])
        raise AudioFileError(
            f"{name}: {bad} sample(s) are NaN or infinite (first at sample {first}); the signal is corrupt"
        )
    peak = float(waveform.abs().max())
    if peak == 0.0 or 20 * math.log10(peak) < silence_dbfs:
        level = "-inf" if peak == 0.0 else f"{20 * math.log10(peak):.1f}"
        raise AudioFileError(
            f"{name}: is silent (peak {level} dBFS, below {silence_dbfs:g} dBFS); "
            "NISQA rates speech and needs an audible signal"
        )


class SpeechQualityModel:
    """A NISQA model with its feature extractor, ready for repeated in-memory and file predictions.

    The model is loaded once; :meth:`predict` and :meth:`predict_batch` take waveforms at any sample rate
    (features are computed at the signal's own rate, exactly like the original NISQA).

    Args:
        model: :class:`~attnkit.audio.quality.NISQA` (or any module with ``output_names`` taking
            ``(segments (B, L, 1, M, S), lengths (B,))``).
        features: the matching :class:`NISQAFeatures`.
        channel: what to do with multi-channel input: ``"error"`` (default), ``"mean"`` (the original
            NISQA's behaviour) or a channel index.
        device: where the model runs.
        batch_size: files per forward pass in :meth:`predict_batch` / :meth:`predict_files`.
        precision: ``"float32"`` (default; matches the original NISQA to < 1e-5) or ``"bfloat16"``, an opt-in
            fast mode that runs the network under bfloat16 autocast (features stay float32). On the 30
            reference files its predictions differ from float32 by < 0.01 (see docs/benchmarks.md); the gain
            needs a CPU with native bfloat16 (AVX512-BF16 / AMX) or a GPU.

    """

    def __init__(
        self,
        model: nn.Module,
        features: NISQAFeatures | None = None,
        *,
        channel: ChannelMode = "error",
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        precision: Literal["float32", "bfloat16"] = "float32",
    ) -> None:
        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
        self.precision = precision
        self.model = model.to(device).eval()
        self.features = features or NISQAFeatures()
        self.channel = channel
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.output_names: tuple[str, ...] = tuple(getattr(model, "output_names", ("mos",)))

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], **kwargs: object) -> SpeechQualityModel:
        """Load an original NISQA checkpoint file (``nisqa.tar`` ...); ``kwargs`` go to the constructor."""
        from attnkit.audio.quality.convert import load_nisqa_checkpoint

        model, features = load_nisqa_checkpoint(path)
        return cls(model, features, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(
        cls,
        name: str = "nisqa",
        *,
        root: str | os.PathLike[str] | None = None,
        download: bool = False,
        **kwargs: object,
    ) -> SpeechQualityModel:
        """Load a released checkpoint from ``<data root>/nisqa-weights/`` (:func:`pretrained_checkpoint`)."""
        from attnkit.audio.quality.convert import pretrained_checkpoint

        return cls.from_checkpoint(pretrained_checkpoint(name, root, download=download), **kwargs)

    def _segments(self, waveform: Tensor | np.ndarray, sample_rate: int, name: str) -> Tensor:
        x = torch.as_tensor(waveform)
        if x.dim() == 2:
            x = to_mono(x, self.channel, name=name)
        if x.dtype == torch.float64:
            x = x.float()
        check_waveform(x, sample_rate, name=name)
        return self.features(x.float(), int(sample_rate), name=name)

    @torch.inference_mode()
    def _run(self, segments: list[Tensor]) -> Tensor:
        padded, lengths = pad_segments(segments)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
            return self.model(padded.to(self.device), lengths.to(self.device)).float().cpu()

    def predict(self, waveform: Tensor | np.ndarray, sample_rate: int) -> QualityPrediction:
        """Scores of one signal.

        Args:
            waveform: ``(N,)`` float samples (``(C, N)`` with ``channel`` set for multi-channel signals).
            sample_rate: in Hz.

        """
        return self.predict_batch([waveform], sample_rate)[0]

    def predict_batch(
        self,
        waveforms: Sequence[Tensor | np.ndarray],
        sample_rate: int | Sequence[int],
        names: Sequence[str] | None = None,
    ) -> list[QualityPrediction]:
        """Scores of several signals (any lengths and rates), ``batch_size`` signals per forward pass."""
        single = isinstance(sample_rate, int | np.integer)
        rates: list[int] = [int(sample_rate)] * len(waveforms) if single else [int(r) for r in sample_rate]  # type: ignore[arg-type,union-attr]
        if len(rates) != len(waveforms):
            raise ValueError(f"{len(waveforms)} waveforms but {len(rates)} sample rates")
        labels = list(names) if names is not None else [f"waveform[{i}]" for i in range(len(waveforms))]
        out: list[QualityPrediction] = []
        for start in range(0, len(waveforms), self.batch_size):
            chunk = range(start, min(start + self.batch_size, len(waveforms)))
            segs = [self._segments(waveforms[i], int(rates[i]), labels[i]) for i in chunk]
            scores = self._run(segs)
            for j, i in enumerate(chunk):
                n = torch.as_tensor(waveforms[i]).shape[-1]
                out.append(
                    QualityPrediction(
                        dict(zip(self.output_names, scores[j].tolist(), strict=True)),
                        n / int(rates[i]),
                        int(rates[i]),
                        labels[i],
                    )
                )
        return out

    def predict_file(self, path: str | os.PathLike[str]) -> QualityPrediction:
        """Scores of one audio file (read at its native rate)."""
        return self.predict_files([path])[0]

    def iter_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        skip_errors: bool = False,
    ) -> Iterator[QualityPrediction | AudioFileError | ValueError]:
        """Predict files in batches; with ``skip_errors`` a bad file yields its error instead of raising."""
        for start in range(0, len(paths), self.batch_size):
            batch: list[tuple[str, Tensor]] = []
            results: dict[str, QualityPrediction | AudioFileError | ValueError] = {}
            rates: dict[str, int] = {}
            for p in paths[start : start + self.batch_size]:
                name = str(p)
                try:
                    x, sr = read_audio(p, channel="keep")
                    x = x[0] if x.shape[0] == 1 else to_mono(x, self.channel, name=name)
                    batch.append((name, self._segments(x, sr, name)))
                    rates[name] = sr
                    results[name] = QualityPrediction({}, x.shape[-1] / sr, sr, name)
                except ValueError as e:  # AudioFileError, AudioTooShortError, AudioTooLongError
                    if not skip_errors:
                        raise
                    results[name] = e
            if batch:
                scores = self._run([s for _, s in batch])
                for (name, _), row in zip(batch, scores, strict=True):
                    r = results[name]
                    assert isinstance(r, QualityPrediction)
                    results[name] = QualityPrediction(
                        dict(zip(self.output_names, row.tolist(), strict=True)),
                        r.duration_s,
                        r.sample_rate,
                        name,
                    )
            for p in paths[start : start + self.batch_size]:
                yield results[str(p)]

    def predict_files(self, paths: Sequence[str | os.PathLike[str]]) -> list[QualityPrediction]:
        """Scores of audio files, batched; the first bad file raises an error naming it."""
        return [r for r in self.iter_files(paths) if isinstance(r, QualityPrediction)]

    def predict_dir(
        self,
        folder: str | os.PathLike[str],
        *,
        recursive: bool = True,
    ) -> list[QualityPrediction]:
        """Scores of every audio file under ``folder`` (sorted by path)."""
        files = list_audio_files(folder, recursive=recursive)
        if not files:
            raise AudioFileError(f"{Path(folder)}: contains no audio files")
        return self.predict_files(files)
