"""In-memory and file inference with a loaded NISQA model: :class:`SpeechQualityModel`."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from attnkit.audio.io import AudioFileError, ChannelMode, list_audio_files, read_audio, to_mono
from attnkit.audio.quality.features import NISQAFeatures, pad_segments

__all__ = ["MIN_USEFUL_SECONDS", "QualityPrediction", "SpeechQualityModel", "check_waveform", "read_file_list"]

#: Clips shorter than this get a warning: NISQA was trained on 6-12 s files (the NISQA Corpus) and the
#: released models were validated on files of that length; a shorter clip is still scored (down to 0.14 s,
#: below which there is no segment), but far outside the training range.
MIN_USEFUL_SECONDS = 3.0

#: Column names tried, in order, for the file column of a CSV list of files.
FILE_COLUMNS = ("filepath_deg", "file", "filepath", "path", "filename", "deg")


@dataclass(frozen=True)
class QualityPrediction:
    """Scores for one signal, keyed by output name (``mos``, ``noi``, ``dis``, ``col``, ``loud``).

    ``error`` is set (and ``scores`` empty) for a file that could not be scored with ``skip_errors``;
    ``warning`` notes a clip shorter than :data:`MIN_USEFUL_SECONDS`.
    """

    scores: dict[str, float]
    duration_s: float
    sample_rate: int
    source: str = ""
    error: str = ""
    warning: str = ""

    @property
    def ok(self) -> bool:
        """Whether the signal was scored."""
        return not self.error

    def __getitem__(self, key: str) -> float:
        return self.scores[key]

    @property
    def mos(self) -> float:
        """Overall MOS."""
        return self.scores["mos"]


def _rate(value: object, name: str) -> int:
    """A sample rate as a positive int; integral floats (``16000.0``) are accepted."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise AudioFileError(f"{name}: sample_rate must be a positive integer in Hz, got {value!r}")
    if not float(value).is_integer() or value <= 0:
        raise AudioFileError(f"{name}: sample_rate must be a positive integer in Hz, got {value!r}")
    return int(value)


def _short_warning(duration_s: float, name: str) -> str:
    if duration_s >= MIN_USEFUL_SECONDS:
        return ""
    return (f"{name}: {duration_s:.2f} s is shorter than {MIN_USEFUL_SECONDS:g} s; NISQA was trained on 6-12 s "
            "files, so its score for a clip this short is unreliable")


def read_file_list(csv_path: str | os.PathLike[str], column: str | None = None) -> list[Path]:
    """Audio paths from a CSV list (the original NISQA's ``--mode predict_csv``).

    Args:
        csv_path: a CSV with a header row.
        column: the column of file paths (``None``: the first of ``filepath_deg``, ``file``, ``filepath``,
            ``path``, ``filename``, ``deg``). Relative paths are relative to the CSV's folder.

    Raises:
        FileNotFoundError: the CSV does not exist.
        ValueError: no such column, or an empty list.
    """
    import csv

    p = Path(csv_path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such CSV file")
    with p.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        col = column if column is not None else next((c for c in FILE_COLUMNS if c in cols), None)
        if col is None or col not in cols:
            raise ValueError(f"{p}: no column {column or ' / '.join(FILE_COLUMNS)!r}; its columns are {cols} -- "
                             "pass the file column (--input-column NAME)")
        files = [Path(r[col]) if Path(r[col]).is_absolute() else p.parent / r[col] for r in reader if r[col]]
    if not files:
        raise ValueError(f"{p}: lists no files in column {col!r}")
    return files


def check_waveform(waveform: Tensor, sample_rate: int, *, name: str = "waveform", silence_dbfs: float = -80.0) -> None:
    """Raise :class:`~attnkit.audio.io.AudioFileError` for empty, non-finite or silent 1-D signals.

    Args:
        waveform: ``(N,)``.
        sample_rate: in Hz; must be positive.
        name: the file or signal name for messages.
        silence_dbfs: a signal whose peak lies below this level (dB re full scale 1.0) counts as silent.

    """
    sample_rate = _rate(sample_rate, name)
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
        channel: what to do with multi-channel input: ``"mean"`` (default: average the channels, as the
            original NISQA does), ``"error"`` or a channel index. In-memory 2-D input may be ``(C, N)`` or, as
            :func:`soundfile.read` returns it, ``(N, C)`` (at most 16 channels and more samples than channels).
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
        channel: ChannelMode = "mean",
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        precision: Literal["float32", "bfloat16"] = "float32",
    ) -> None:
        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
        self.precision = precision
        if precision == "bfloat16":
            from attnkit.core.runtime import slow_precision_warning

            slow = slow_precision_warning("bfloat16", on_cpu=torch.device(device).type == "cpu",
                                          fix='precision="float32" (no --bf16)')
            if slow is not None:
                warnings.warn(slow, stacklevel=2)
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
        if x.dim() == 2 and x.shape[1] <= 16 < x.shape[0]:  # soundfile's (N, C) layout
            x = x.T
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
        """Scores of several signals (any lengths and rates), ``batch_size`` signals per forward pass.

        Signals shorter than :data:`MIN_USEFUL_SECONDS` are scored with a :class:`UserWarning` (and
        ``warning`` set on their prediction).
        """
        labels = list(names) if names is not None else [f"waveform[{i}]" for i in range(len(waveforms))]
        if isinstance(sample_rate, int | float | np.integer | np.floating):
            rates = [_rate(sample_rate, "predict")] * len(waveforms)
        else:
            rates = [_rate(r, labels[i] if i < len(labels) else "predict") for i, r in enumerate(sample_rate)]
        if len(rates) != len(waveforms):
            raise ValueError(f"{len(waveforms)} waveforms but {len(rates)} sample rates")
        out: list[QualityPrediction] = []
        for start in range(0, len(waveforms), self.batch_size):
            chunk = range(start, min(start + self.batch_size, len(waveforms)))
            segs = [self._segments(waveforms[i], int(rates[i]), labels[i]) for i in chunk]
            scores = self._run(segs)
            for j, i in enumerate(chunk):
                shape = torch.as_tensor(waveforms[i]).shape
                n = shape[0] if len(shape) == 2 and shape[1] <= 16 < shape[0] else shape[-1]
                warning = _short_warning(n / rates[i], labels[i])
                if warning:
                    warnings.warn(warning, UserWarning, stacklevel=3)
                out.append(
                    QualityPrediction(
                        dict(zip(self.output_names, scores[j].tolist(), strict=True)),
                        n / rates[i],
                        rates[i],
                        labels[i],
                        warning=warning,
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
                    results[name] = QualityPrediction({}, x.shape[-1] / sr, sr, name,
                                                      warning=_short_warning(x.shape[-1] / sr, name))
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
                        warning=r.warning,
                    )
            for p in paths[start : start + self.batch_size]:
                yield results[str(p)]

    def predict_files(
        self, paths: Sequence[str | os.PathLike[str]], *, skip_errors: bool = False
    ) -> list[QualityPrediction]:
        """Scores of audio files, batched, one prediction per path in order.

        Args:
            paths: the files.
            skip_errors: a bad file gives a prediction with ``error`` set (and no scores) instead of raising.

        Raises:
            AudioFileError: (without ``skip_errors``) the first bad file, named.
        """
        out = []
        for p, r in zip(paths, self.iter_files(paths, skip_errors=skip_errors), strict=True):
            if isinstance(r, QualityPrediction):
                out.append(r)
            else:
                out.append(QualityPrediction({}, float("nan"), 0, str(p), error=str(r)))
        return out

    def predict_dir(
        self,
        folder: str | os.PathLike[str],
        *,
        recursive: bool = True,
        skip_errors: bool = False,
    ) -> list[QualityPrediction]:
        """Scores of every audio file under ``folder`` (sorted by path); see :meth:`predict_files`."""
        files = list_audio_files(folder, recursive=recursive)
        if not files:
            raise AudioFileError(f"{Path(folder)}: contains no audio files")
        return self.predict_files(files, skip_errors=skip_errors)

    def predict_csv(
        self, csv_path: str | os.PathLike[str], column: str | None = None, *, skip_errors: bool = False
    ) -> list[QualityPrediction]:
        """Scores of the files a CSV lists (:func:`read_file_list`); see :meth:`predict_files`."""
        return self.predict_files(read_file_list(csv_path, column), skip_errors=skip_errors)
