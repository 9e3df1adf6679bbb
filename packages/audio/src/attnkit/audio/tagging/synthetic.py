"""Tiny tagged audio collections for tests and smoke runs (written on demand, never at import time).

:func:`write_tone_collection` writes a CSV collection whose tags are audible (low/high pitch, noise,
pulse), so a model can learn them in a few steps; :func:`write_mtat_layout` writes a MagnaTagATune
look-alike (tab-separated ``annotations_final.csv`` with quoted fields, 188 tag columns, MP3 clips in
folders ``0``-``f``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from attnkit.audio.tagging.formats import MTAT_TOP50

__all__ = ["tone_clip", "write_mtat_layout", "write_tone_collection"]

TONE_TAGS = ("low", "high", "noisy", "pulse")


def tone_clip(tags: Sequence[str], seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A signal whose content follows its tags: ``low`` 220 Hz, ``high`` 1760 Hz, ``noisy``, ``pulse``."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    y = np.zeros_like(t)
    f0 = rng.uniform(0.9, 1.1)
    if "low" in tags:
        y += 0.3 * np.sin(2 * np.pi * 220 * f0 * t)
    if "high" in tags:
        y += 0.3 * np.sin(2 * np.pi * 1760 * f0 * t)
    if "pulse" in tags:
        y *= 0.2 + 0.8 * (np.sin(2 * np.pi * 4 * t) > 0)
    if "noisy" in tags:
        y += 0.15 * rng.standard_normal(t.size)
    y += 0.003 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def write_tone_collection(
    root: str | Path,
    n_per_split: Sequence[int] = (16, 6, 6),
    seconds: float = 2.0,
    sample_rate: int = 16000,
    seed: int = 0,
    fmt: str = "wav",
) -> Path:
    """Write ``root/tags.csv`` (``path,tags,split``) and ``root/audio/*.{fmt}`` with audible tags.

    Each clip is ``low`` or ``high`` and independently ``noisy`` and/or ``pulse``; every split holds
    positives and negatives of every tag.

    Returns:
        ``root``.
    """
    root = Path(root)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in zip(("train", "val", "test"), n_per_split, strict=True):
        for i in range(n):
            tags = ["low" if i % 2 else "high"]
            if (i // 2) % 2:
                tags.append("noisy")
            if (i // 4) % 2 == 0:
                tags.append("pulse")
            name = f"audio/{split}_{i:03d}.{fmt}"
            sf.write(root / name, tone_clip(tags, seconds, sample_rate, rng), sample_rate)
            rows.append([name, ";".join(tags), split])
    with (root / "tags.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "tags", "split"])
        w.writerows(rows)
    return root


def mtat_columns() -> list[str]:
    """188 tag column names: the real top-50 tags plus placeholder names for the other 138."""
    return list(MTAT_TOP50) + [f"other tag {i}" for i in range(188 - len(MTAT_TOP50))]


def write_mtat_layout(
    root: str | Path,
    clips: Sequence[tuple[str, str, Sequence[str]]],
    seconds: float = 1.5,
    sample_rate: int = 16000,
    seed: int = 0,
    audio: bool = True,
) -> Path:
    """Write a MagnaTagATune look-alike.

    Args:
        root: the dataset folder.
        clips: ``(clip_id, mp3_path like "c/artist-album-01-title-0-29.mp3", tags)``.
        seconds: clip length.
        sample_rate: clip rate (the real clips are 16 kHz mono MP3).
        seed: noise seed.
        audio: also write the MP3 files (libsndfile >= 1.1 encodes MP3).

    Returns:
        ``root``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cols = mtat_columns()
    rng = np.random.default_rng(seed)
    with (root / "annotations_final.csv").open("w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow(["clip_id", *cols, "mp3_path"])
        for clip_id, rel, tags in clips:
            w.writerow([clip_id, *("1" if c in tags else "0" for c in cols), rel])
            if audio:
                p = root / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                tone = ["low" if "slow" in tags or "classical" in tags else "high"]
                sf.write(p, tone_clip(tone, seconds, sample_rate, rng), sample_rate, format="MP3")
    return root
