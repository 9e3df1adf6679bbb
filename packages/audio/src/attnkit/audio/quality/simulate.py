"""A seeded simulated speech-quality corpus built from clean speech, labelled from its degradations.

Every clip is a clean utterance (resampled to ``sample_rate``, cropped, RMS-normalised to -26 dBFS) passed
through a random chain of documented distortions, in this order:

1. **band limit** -- Butterworth band-pass/low-pass: narrowband 300-3400 Hz, or low-pass at 2, 3, 4, 5.5 kHz.
2. **codec** -- G.711-style mu-law companding at 8 kHz with 256 (real G.711) or 64/32 levels.
3. **additive noise** -- white, pink or babble (4 other utterances) at an SNR of 0..40 dB.
4. **packet loss** -- 20 ms frames zeroed with a Gilbert (bursty) model, loss rate 2..30 %.
5. **clipping** -- hard clipping at 3..50 % of the peak.
6. **level** -- gain of -35..+10 dB around -26 dBFS (the output is clipped to +-1, as a sound card would).

**Labels** (1..5 MOS scale). Each dimension is a documented function of the parameters that act on it:

* ``noi`` (noisiness) from the effective SNR (additive noise and codec quantisation noise combined in power):
  ``1 + 3.5 * clip((snr - 0) / 35, 0, 1)``.
* ``col`` (coloration) from the effective audio bandwidth (min of the source's Nyquist and the filter; the
  wideband/super-wideband anchors follow ITU-T P.863 practice: NB ~ 3.0, WB ~ 4.0, FB ~ 4.5) and the
  clipping distortion; ``dis`` (discontinuity) from the packet loss rate and clipping (crackle);
  ``loud`` (loudness) from the level relative to -26 dBFS (quiet is punished more than loud).
* ``mos`` integrates the dimensions as a Euclidean distance from the ideal point of the perceptual space
  (the dimension-based integral-quality idea of Wältermann et al., "Quality dimensions of narrowband and
  wideband speech transmission", Acta Acustica 2010), on the E-model's transmission-rating scale
  (ITU-T G.107): each dimension is mapped to ``R_d`` (inverse of
  ``MOS(R) = 1 + 0.035 R + 7e-6 R (R - 60)(100 - R)``), its impairment is ``I_d = 100 - R_d``, and
  ``MOS = MOS(100 - sqrt(sum_d I_d^2))``. A plain sum of impairments (G.107's additivity) floors MOS at 1
  for most clips with two or more impairments; the Euclidean form keeps the strongest one dominant.

The exact numbers are in :func:`label_degradation`; all randomness comes from
``numpy.random.default_rng([seed, clip])``
per clip, so the corpus is a pure function of (clean files, seed, settings).
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from scipy import signal as sps

from attnkit.audio.io import AudioFileError, list_audio_files, read_audio, resample

__all__ = [
    "Degradation",
    "apply_degradation",
    "generate_corpus",
    "label_degradation",
    "mos_from_r",
    "r_from_mos",
    "sample_degradation",
]

TARGET_DBFS = -26.0
CSV_NAME = "simulated_corpus.csv"


@dataclass(frozen=True)
class Degradation:
    """Parameters of one degradation chain (``None`` / 0 = not applied)."""

    lowpass_hz: float | None = None
    highpass_hz: float | None = None
    codec_levels: int | None = None
    noise: str | None = None
    snr_db: float | None = None
    loss_rate: float = 0.0
    clip_fraction: float | None = None
    level_db: float = 0.0


def mos_from_r(r: float) -> float:
    """ITU-T G.107 MOS from the transmission rating ``R`` (1 below R=0, 4.5 above R=100)."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)


def r_from_mos(mos: float) -> float:
    """Inverse of :func:`mos_from_r` on ``[1, 4.5]`` (bisection; the map is monotonic there)."""
    mos = min(max(mos, 1.0), 4.5)
    lo, hi = 0.0, 100.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mos_from_r(mid) < mos else (lo, mid)
    return (lo + hi) / 2


def sample_degradation(rng: np.random.Generator) -> Degradation:
    """Draw a degradation chain; about 10 % of clips stay clean (only a small level change)."""
    if rng.random() < 0.1:
        return Degradation(level_db=float(rng.uniform(-3, 3)))
    bw = rng.choice(["none", "nb", "lp"], p=[0.5, 0.25, 0.25])
    low, high = None, None
    if bw == "nb":
        low, high = 3400.0, 300.0
    elif bw == "lp":
        low = float(rng.choice([2000.0, 3000.0, 4000.0, 5500.0]))
    codec = int(rng.choice([256, 64, 32])) if rng.random() < 0.15 else None
    noise, snr = None, None
    if rng.random() < 0.5:
        noise = str(rng.choice(["white", "pink", "babble"]))
        snr = float(rng.uniform(0, 40))
    loss = float(rng.uniform(0.02, 0.3)) if rng.random() < 0.3 else 0.0
    clip = float(rng.uniform(0.03, 0.5)) if rng.random() < 0.2 else None
    level = float(rng.uniform(-35, 10)) if rng.random() < 0.3 else float(rng.uniform(-3, 3))
    return Degradation(low, high, codec, noise, snr, loss, clip, level)


def _bandwidth_col(bw_hz: float, highpass_hz: float | None) -> float:
    """Coloration from the effective bandwidth: 2 kHz 2.0, NB 3.4 kHz 3.0, WB 7 kHz 4.0, FB 4.5."""
    anchors_hz = [1000.0, 2000.0, 3400.0, 5500.0, 7000.0, 14000.0]
    anchors_mos = [1.3, 2.0, 3.0, 3.6, 4.0, 4.5]
    col = float(np.interp(math.log(bw_hz), np.log(anchors_hz), anchors_mos))
    if highpass_hz is not None and highpass_hz >= 300:
        col -= 0.2  # missing low frequencies (telephone band-pass)
    return col


def label_degradation(d: Degradation, source_bandwidth_hz: float) -> dict[str, float]:
    """Per-dimension scores and overall MOS (1..5 scale) for a chain applied to a source of given bandwidth.

    Returns:
        ``{"mos", "noi", "dis", "col", "loud"}``.

    """
    # noisiness: additive noise and codec quantisation noise add in power
    snr_terms = []
    if d.snr_db is not None:
        snr_terms.append(d.snr_db)
    if d.codec_levels is not None:
        snr_terms.append({256: 38.0, 64: 26.0, 32: 20.0}[d.codec_levels])  # mu-law SQNR on speech, approx.
    snr = -10 * math.log10(sum(10 ** (-s / 10) for s in snr_terms)) if snr_terms else 60.0
    noi = 1 + 3.5 * min(max(snr / 35.0, 0.0), 1.0)
    # coloration: effective bandwidth, codec at 8 kHz, clipping distortion
    bw = min(source_bandwidth_hz, d.lowpass_hz or math.inf, 4000.0 if d.codec_levels else math.inf)
    col = _bandwidth_col(bw, d.highpass_hz)
    clip_severity = 0.0 if d.clip_fraction is None else 1 - d.clip_fraction / 0.5  # 0 (mild) .. ~0.94
    col -= 1.2 * clip_severity
    # discontinuity: frame loss and clipping crackle
    dis = 4.5 - 3.5 * min(d.loss_rate / 0.3, 1.0) - 1.0 * clip_severity
    # loudness: distance from -26 dBFS; too quiet is worse than too loud
    lv = d.level_db
    loud = 4.5 - (abs(lv) / 10.0 if lv < 0 else lv / 5.0) if abs(lv) > 3 else 4.5
    dims = {k: float(min(max(v, 1.0), 4.5)) for k, v in {"noi": noi, "dis": dis, "col": col, "loud": loud}.items()}
    impairment = math.sqrt(sum((100 - r_from_mos(v)) ** 2 for v in dims.values()))
    return {"mos": mos_from_r(100 - impairment), **dims}


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)


def _noise(kind: str, n: int, rng: np.random.Generator, babble: Sequence[np.ndarray]) -> np.ndarray:
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "pink":
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.arange(spec.size)
        spec[1:] /= np.sqrt(f[1:])
        spec[0] = 0
        return np.fft.irfft(spec, n)
    out = np.zeros(n)
    for src in babble:
        start = int(rng.integers(0, max(1, len(src) - n)))
        seg = np.resize(src[start : start + n], n)
        out += seg / _rms(seg)
    return out


def apply_degradation(
    x: np.ndarray, sr: int, d: Degradation, rng: np.random.Generator, babble: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """Apply a chain to a clean ``(N,)`` signal at -26 dBFS; returns float32 in [-1, 1]."""
    y = x.astype(np.float64)
    if d.lowpass_hz is not None and d.lowpass_hz < sr / 2:
        if d.highpass_hz is not None:
            sos = sps.butter(8, [d.highpass_hz, d.lowpass_hz], btype="bandpass", fs=sr, output="sos")
        else:
            sos = sps.butter(8, d.lowpass_hz, btype="lowpass", fs=sr, output="sos")
        y = sps.sosfilt(sos, y)
    if d.codec_levels is not None:
        t = resample(torch.from_numpy(y), sr, 8000)
        scale = float(t.abs().max()) + 1e-9
        q = AF.mu_law_encoding(t / scale, d.codec_levels)
        t = AF.mu_law_decoding(q, d.codec_levels) * scale
        y = resample(t, 8000, sr).numpy()[: len(y)]
        y = np.pad(y, (0, len(x) - len(y)))
    if d.noise is not None and d.snr_db is not None:
        n = _noise(d.noise, len(y), rng, babble)
        y = y + n * (_rms(y) / _rms(n)) * 10 ** (-d.snr_db / 20)
    if d.loss_rate > 0:
        frame = int(0.02 * sr)
        n_frames = len(y) // frame
        # Gilbert model: P(loss | received) = p, P(loss | lost) = q (bursty), stationary rate p / (1 - q + p)
        q = 0.5
        p = d.loss_rate * (1 - q) / (1 - d.loss_rate)
        lost = False
        for k in range(n_frames):
            lost = rng.random() < (q if lost else p)
            if lost:
                y[k * frame : (k + 1) * frame] = 0.0
    if d.clip_fraction is not None:
        c = d.clip_fraction * float(np.abs(y).max())
        y = np.clip(y, -c, c) * (float(np.abs(x).max()) / max(c, 1e-9))  # back to the clean peak level
    y = y * 10 ** (d.level_db / 20)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def generate_corpus(
    clean: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    num_clips: int = 1000,
    seed: int = 0,
    sample_rate: int = 16000,
    max_seconds: float = 4.0,
    min_seconds: float = 1.0,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    progress: bool = True,
) -> Path:
    """Write ``num_clips`` degraded clips and a NISQA-format CSV; returns the CSV path.

    Clips from the same clean source always fall into the same split (``db`` = ``SIM_TRAIN`` /
    ``SIM_VAL`` / ``SIM_TEST``, a seeded permutation of the sources with at least one source in each
    held-out split), so the held-out splits contain unseen utterances.
    An existing CSV for the same settings is reused.

    Args:
        clean: a folder of clean speech (searched recursively) or a list of files.
        out_dir: where ``deg/*.wav`` and ``simulated_corpus.csv`` go.
        num_clips: clips to make (sources are cycled with different degradations).
        seed: master seed.
        sample_rate: output rate (sources are resampled with torchaudio).
        max_seconds: longer sources are cropped at a random offset.
        min_seconds: shorter sources are skipped.
        split: train/val/test fractions of the sources.
        progress: print what is built and where, and show progress bars (stderr).

    """
    out = Path(out_dir)
    csv_path = out / CSV_NAME
    if csv_path.is_file():
        return csv_path
    from tqdm.auto import tqdm

    files = list_audio_files(clean) if isinstance(clean, str | os.PathLike) else [Path(p) for p in clean]
    if progress:
        mb = num_clips * max_seconds * sample_rate * 2 / 1e6
        print(
            f"attnkit: building a simulated speech-quality corpus: {num_clips} clips from {len(files)} clean "
            f"file(s) in {clean if isinstance(clean, str | os.PathLike) else 'the given list'}, into {out} "
            f"(up to {mb:.0f} MB; built once, then reused)",
            file=sys.stderr,
        )
    sources: list[tuple[Path, np.ndarray, float]] = []
    for f in tqdm(files, desc="reading clean speech", unit="file", disable=not progress, leave=False):
        wav, sr = read_audio(f, channel="mean")
        if wav.numel() < min_seconds * sr or float(wav.abs().max()) == 0.0:
            continue
        sources.append((f, resample(wav, sr, sample_rate).double().numpy(), sr / 2))
    if len(sources) < 2:
        raise AudioFileError(
            f"{clean}: found {len(sources)} usable clean file(s) of >= {min_seconds} s; "
            "need at least 2 (one is used as babble for another)"
        )
    (out / "deg").mkdir(parents=True, exist_ok=True)
    # split by source: a seeded permutation of the sources, at least one source per held-out split
    order = np.random.default_rng([seed, 7919]).permutation(len(sources))
    n_val = max(1, round(split[1] / sum(split) * len(sources))) if len(sources) >= 3 else 0
    n_test = max(1, round(split[2] / sum(split) * len(sources))) if len(sources) >= 3 else 0
    split_of = {int(k): "SIM_VAL" for k in order[:n_val]}
    split_of.update({int(k): "SIM_TEST" for k in order[n_val : n_val + n_test]})
    rows = []
    for i in tqdm(range(num_clips), desc="simulating degraded clips", unit="clip", disable=not progress,
                  leave=False):
        rng = np.random.default_rng([seed, i])
        src, x, bw = sources[i % len(sources)]
        db = split_of.get(i % len(sources), "SIM_TRAIN")
        n = min(len(x), int(max_seconds * sample_rate))
        start = int(rng.integers(0, len(x) - n + 1))
        clip = x[start : start + n]
        clip = clip * (10 ** (TARGET_DBFS / 20) / _rms(clip))
        d = sample_degradation(rng)
        others = [sources[j][1] for j in rng.choice(len(sources), size=min(4, len(sources)), replace=False)]
        y = apply_degradation(clip, sample_rate, d, rng, others)
        if float(np.abs(y).max()) == 0.0:
            y[0] = 1e-3
        rel = f"deg/c{i:05d}_{src.stem}.wav"
        sf.write(out / rel, y, sample_rate, subtype="PCM_16")
        labels = label_degradation(d, bw)
        rows.append(
            {
                "db": db,
                "con": i,
                "filepath_deg": rel,
                "source": str(src.name),
                **{k: f"{labels[k]:.4f}" for k in ("mos", "noi", "dis", "col", "loud")},
                **{k: ("" if v is None else v) for k, v in asdict(d).items()},
            }
        )
    tmp = csv_path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(csv_path)
    return csv_path
