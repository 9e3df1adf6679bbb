"""A music-tagging dataset anyone can build offline: real scores rendered to audio, tagged from metadata.

Scores come from the music21 corpus (shipped inside the ``music21`` wheel: Bach chorales, Palestrina
masses, Monteverdi madrigals, trecento pieces, Haydn/Mozart/Beethoven quartets, Romantic songs and piano
pieces, Irish/Scottish/German folk tunes, ...). Each piece is cropped to its first ``clip_seconds``,
written to MIDI by music21 and rendered with FluidSynth and a General MIDI soundfont
(Debian: ``apt-get install fluidsynth fluid-soundfont-gm``). A process per piece with a timeout keeps a
slow parse from stalling the build; each render is bounded in duration and bytes and its process group is
killed when it stops (:mod:`attnkit.audio.tagging.render`). The build writes as it goes and resumes.

Tags come from the score, never from the audio (see ``docs/audio-tagging.md`` for the balance):

- ``instrument:*`` -- the family of each part, from its part name and instrument (vocal part names such
  as *Soprano*, *Canto*, *Bassus* -> ``voices``; violin/viola/cello -> ``strings``; piano/organ/harpsichord
  -> ``keyboard``; wind and brass -> ``winds``). A part with no instrument information is played by the
  GM piano and tagged ``keyboard``. The rendering uses the same family, so the tag describes the audio.
- ``texture:monophonic`` (one part) or ``texture:polyphonic``.
- ``era:*`` -- from the composer (score metadata, else the corpus folder, which music21 organises by
  composer or collection): medieval, renaissance, baroque, classical, romantic, modern, traditional.
- ``composer:*`` -- the corpus composer (collections of folk tunes have none).
- ``mode:major`` / ``mode:minor`` -- the first key in the score, else Krumhansl-Schmuckler key analysis.
- ``metre:duple`` / ``metre:triple`` / ``metre:compound`` -- the first time signature (2 or 4 beats ->
  duple, 3 -> triple, 6/9/12 over 8 or 16 -> compound).
- ``tempo:slow|moderate|fast`` -- only when the score states a tempo (a metronome mark with a number
  or a tempo text such as *Allegro*): quarter notes per minute < 80, 80-119, >= 120. A MusicXML
  playback-only ``<sound tempo>`` does not count (notation programs write a default there); such
  scores are rendered at that playback tempo, others at music21's 120 per minute, and get no tempo tag.

Only the ``instrument`` and ``tempo`` tags are expected to transfer to real recordings
(:data:`TAG_FAMILIES`, and the ``transfers_to_real_audio`` column of ``tag_counts.csv``).

Run it with ``python -m attnkit.audio.tagging.scores OUT_DIR`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import multiprocessing as mp
import os
import queue
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from attnkit.audio.tagging.render import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_SECONDS,
    find_soundfont,
    kill_process_group,
    render_fluidsynth,
)

__all__ = [
    "ERA_OF_COMPOSER",
    "TAG_FAMILIES",
    "PieceTags",
    "ScoreDatasetConfig",
    "TagFamily",
    "build_score_dataset",
    "find_soundfont",
    "instrument_family",
    "render_sine",
    "score_tags",
    "select_corpus_pieces",
    "tag_transfers",
]

@dataclass(frozen=True)
class TagFamily:
    """One family of tags of the score-rendered set, and whether it is expected to carry over to real audio.

    Attributes:
        prefix: the tags' prefix (``"instrument"`` for ``instrument:voices``, ...).
        transfers: expected to mean the same on real recordings as on the rendered scores.
        reason: why (or why not).

    """

    prefix: str
    transfers: bool
    reason: str


#: The tag vocabulary of the score-rendered set. Only the families marked ``transfers`` describe something
#: a model can hear in any recording; the others are facts about the score or its corpus collection that a
#: model learns through shortcuts of this set (which collections use which instruments and keys) and that
#: did not carry over in a check on four real recordings (see docs/audio-tagging.md).
TAG_FAMILIES: tuple[TagFamily, ...] = (
    TagFamily("instrument", True, "the timbre family (voices, strings, keyboard, winds) is in the sound; "
              "General MIDI samples stand in for real instruments, so expect a loss, not a different meaning"),
    TagFamily("tempo", True, "a stated tempo band (slow/moderate/fast) is audible as the rate of events"),
    TagFamily("texture", False, "counts the parts of the score, not the sounding voices: a one-part piano "
              "score is polyphonic audio; a model trained here called every real recording polyphonic"),
    TagFamily("era", False, "a property of the composer, carried in this set by a few corpus collections "
              "(Bach chorales, folk-tune books) and their rendering"),
    TagFamily("composer", False, "the corpus folder: a handful of composers, each with its own instrumentation"),
    TagFamily("mode", False, "the first key of the score (or key analysis); real recordings modulate, and "
              "the rendered set's major/minor balance follows its collections"),
    TagFamily("metre", False, "the first time signature: a notational fact, weakly audible and not "
              "separable from the collections here"),
)
_TRANSFERS = {f.prefix: f.transfers for f in TAG_FAMILIES}


def tag_transfers(tag: str) -> bool:
    """Whether a tag of this set (``"instrument:strings"``) is expected to transfer to real recordings.

    Raises:
        ValueError: the tag's family is not one of :data:`TAG_FAMILIES`.

    """
    prefix = tag.split(":", 1)[0]
    if prefix not in _TRANSFERS:
        raise ValueError(
            f"tag {tag!r} is not of the score-rendered vocabulary (families: {', '.join(_TRANSFERS)})"
        )
    return _TRANSFERS[prefix]


#: Era of each composer / collection folder of the music21 corpus.
ERA_OF_COMPOSER: dict[str, str] = {
    "trecento": "medieval",
    "ciconia": "medieval",
    "luca": "medieval",
    "palestrina": "renaissance",
    "josquin": "renaissance",
    "monteverdi": "renaissance",
    "lusitano": "renaissance",
    "bach": "baroque",
    "handel": "baroque",
    "corelli": "baroque",
    "cpebach": "classical",
    "haydn": "classical",
    "mozart": "classical",
    "beethoven": "classical",
    "schubert": "romantic",
    "schumann_robert": "romantic",
    "schumann_clara": "romantic",
    "chopin": "romantic",
    "verdi": "romantic",
    "weber": "romantic",
    "beach": "romantic",
    "liliuokalani": "romantic",
    "schoenberg": "modern",
    "webern": "modern",
    "joplin": "modern",
    "johnson_j_r": "modern",
    "ryansMammoth": "traditional",
    "oneills1850": "traditional",
    "essenFolksong": "traditional",
    "airdsAirs": "traditional",
    "miscFolk": "traditional",
    "nottingham-dataset": "traditional",
}
#: Collections of anonymous/traditional tunes: no composer tag.
_COLLECTIONS = {
    "ryansMammoth",
    "oneills1850",
    "essenFolksong",
    "airdsAirs",
    "miscFolk",
    "nottingham-dataset",
    "trecento",
}
#: Corpus folders that are not pieces of music to render (analyses, exercises, demos, lead sheets).
_SKIP_FOLDERS = {"demos", "theoryExercises", "leadSheet"}

_VOCAL = re.compile(
    r"sopran|alto|altus|tenor|bass|canto|cantus|quint|sext|voice|vox|superius|discantus|contra|triplum|"
    r"motetus|duplum|choir|chor(?!d)|singer|vocal|treble",
    re.I,
)
_STRINGS = re.compile(r"violin|viola|cello|violoncell|contrabass|double bass|string|fiddle|violon", re.I)
_KEYBOARD = re.compile(r"piano|organ|harpsichord|keyboard|clavi|cembalo|celesta", re.I)
_WINDS = re.compile(
    r"flute|oboe|clarinet|bassoon|horn|trumpet|trombone|tuba|sax|recorder|piccolo|cornet|"
    r"wind|brass|shawm|pipe",
    re.I,
)
#: General MIDI program (0-based) used to render each family.
FAMILY_PROGRAM: dict[str, int] = {"voices": 52, "strings": 48, "keyboard": 0, "winds": 73}
_STRING_PROGRAMS = {"violin": 40, "viola": 41, "cello": 42, "violoncell": 42, "contrabass": 43}


def instrument_family(
    part_name: str | None, instrument_name: str | None, instrument_class: str | None
) -> str:
    """Return the instrument family of a part: ``voices``, ``strings``, ``keyboard`` or ``winds``.

    The part name wins over the instrument (corpus files often carry a placeholder MIDI instrument such
    as *Piano* for vocal parts); a part with no usable information is ``keyboard`` (rendered on piano).
    """
    for text in (part_name, instrument_name, instrument_class):
        if not text:
            continue
        if _KEYBOARD.search(text):
            return "keyboard"
        if _VOCAL.search(text) and not re.search(
            r"bassoon|bass clarinet|double bass|contrabass|"
            r"bass guitar|tenor sax|alto sax|tenorsax|altosax",
            text,
            re.I,
        ):
            return "voices"
        if _STRINGS.search(text):
            return "strings"
        if _KEYBOARD.search(text):
            return "keyboard"
        if _WINDS.search(text):
            return "winds"
    return "keyboard"


def _program_for(family: str, names: Sequence[str | None]) -> int:
    if family == "strings":
        for text in names:
            for key, prog in _STRING_PROGRAMS.items():
                if text and key in text.lower():
                    return prog
    return FAMILY_PROGRAM[family]


@dataclass
class PieceTags:
    """What the builder derives from one score.

    Attributes:
        families: instrument family per part (same order as the parts).
        composer: corpus composer folder, or ``None`` for collections of traditional tunes.
        era: era of the composer (see :data:`ERA_OF_COMPOSER`) or ``None``.
        mode: ``"major"``/``"minor"`` or ``None``.
        metre: ``"duple"``/``"triple"``/``"compound"`` or ``None``.
        tempo_qpm: stated tempo in quarter notes per minute, or ``None`` when the score states none.
        tags: the resulting tag list.

    """

    families: list[str]
    composer: str | None
    era: str | None
    mode: str | None
    metre: str | None
    tempo_qpm: float | None
    tags: list[str] = field(default_factory=list)


def _metre(ts: Any) -> str | None:
    if ts is None:
        return None
    num, den = int(ts.numerator), int(ts.denominator)
    if num in (6, 9, 12) and den >= 8:
        return "compound"
    if num % 3 == 0 and num != 6 and num != 12:
        return "triple"
    if num in (2, 4, 8, 6, 12) or num % 2 == 0:
        return "duple"
    return None


def _tempo_band(qpm: float | None) -> str | None:
    if qpm is None:
        return None
    return "slow" if qpm < 80 else ("moderate" if qpm < 120 else "fast")


def score_tags(score: Any, corpus_folder: str | None) -> PieceTags:
    """Derive the tags of a music21 score from its metadata (see the module docstring).

    Args:
        score: a ``music21.stream.Score``.
        corpus_folder: the music21 corpus folder it came from (``"bach"``, ``"ryansMammoth"``, ...), used
            as the composer when the score's metadata names none.

    Returns:
        The derived :class:`PieceTags`.

    """
    from music21 import key, meter, tempo

    parts = list(score.parts) or [score]
    families = []
    for p in parts:
        inst = p.getInstrument(returnDefault=False)
        families.append(
            instrument_family(
                p.partName,
                getattr(inst, "instrumentName", None),
                type(inst).__name__ if inst is not None else None,
            )
        )
    composer = corpus_folder if corpus_folder and corpus_folder not in _COLLECTIONS else None
    era = ERA_OF_COMPOSER.get(corpus_folder or "")
    ks = score.recurse().getElementsByClass(key.Key).first()
    if ks is None:
        try:
            ks = score.analyze("key")
        except Exception:  # pieces with no pitches
            ks = None
    mode = ks.mode if ks is not None and ks.mode in ("major", "minor") else None
    metre = _metre(score.recurse().getElementsByClass(meter.TimeSignature).first())
    qpm = None
    for mark in score.recurse().getElementsByClass(tempo.TempoIndication):
        if isinstance(mark, tempo.MetronomeMark) and mark.number is not None:
            qpm = float(mark.getQuarterBPM() or mark.number)
            break
        if isinstance(mark, tempo.TempoText):
            mm = mark.getMetronomeMark()
            if mm is not None and mm.number is not None:
                qpm = float(mm.getQuarterBPM() or mm.number)
                break
    tags = sorted({f"instrument:{f}" for f in families})
    tags.append("texture:monophonic" if len(parts) == 1 else "texture:polyphonic")
    if era:
        tags.append(f"era:{era}")
    if composer:
        tags.append(f"composer:{composer}")
    if mode:
        tags.append(f"mode:{mode}")
    if metre:
        tags.append(f"metre:{metre}")
    band = _tempo_band(qpm)
    if band:
        tags.append(f"tempo:{band}")
    return PieceTags(families, composer, era, mode, metre, qpm, tags)


# ----------------------------------------------------------------------------------------------- rendering


def _crop(score: Any, seconds: float) -> Any:
    """Return the first measures of ``score`` covering ``seconds`` at its first tempo (all on failure)."""
    from music21 import tempo

    mark = score.recurse().getElementsByClass(tempo.MetronomeMark).first()
    qpm = float(mark.getQuarterBPM() or 120) if mark is not None and mark.number else 120.0
    quarters = seconds * qpm / 60.0
    try:
        first = score.parts[0] if score.parts else score
        measures = list(first.getElementsByClass("Measure"))
        if not measures:
            return score
        last = measures[-1].number
        for m in measures:
            if m.offset > quarters:
                last = m.number
                break
        return score.measures(measures[0].number, last) if last < measures[-1].number else score
    except Exception:
        return score


def _set_programs(score: Any, families: Sequence[str]) -> None:
    from music21 import instrument

    for p, fam in zip(score.parts, families, strict=False):
        inst = p.getInstrument(returnDefault=False)
        names = [p.partName, getattr(inst, "instrumentName", None)]
        new = instrument.Instrument()
        new.midiProgram = _program_for(fam, names)
        new.partName = p.partName
        for old in list(p.recurse().getElementsByClass(instrument.Instrument)):
            old.activeSite.remove(old)
        p.insert(0, new)


def _events_only(score: Any) -> Any:
    """Keep the notes, rests, tempo marks and instruments of each part without measures (for MIDI export)."""
    from music21 import stream

    out = stream.Score()
    for part in score.parts:
        flat = part.flatten()
        new = stream.Part()
        for el in flat.getElementsByClass(["Note", "Chord", "Rest", "MetronomeMark", "Instrument"]):
            new.insert(flat.elementOffset(el), el)
        out.insert(0, new)
    return out


def render_sine(
    score: Any, sample_rate: int, seconds: float, families: Sequence[str] | None = None
) -> np.ndarray:
    """Render without a soundfont: additive synthesis of the score's notes (no real timbres).

    Each family gets its own harmonic profile and envelope so that instrument tags remain audible, but this
    is a test and fallback renderer, not a substitute for FluidSynth.

    Returns:
        ``(N,)`` float32 signal of at most ``seconds``.

    """
    profiles = {
        "voices": [1.0, 0.5, 0.2],
        "strings": [1.0, 0.7, 0.5, 0.35, 0.2],
        "keyboard": [1.0, 0.4, 0.15],
        "winds": [1.0, 0.1, 0.4, 0.05, 0.2],
    }
    n = int(seconds * sample_rate)
    out = np.zeros(n, dtype=np.float64)
    parts = list(score.parts) or [score]
    fams = list(families or ["keyboard"] * len(parts))
    for part, fam in zip(parts, fams, strict=False):
        for item in part.flatten().secondsMap:
            el = item["element"]
            if not hasattr(el, "pitches") or not el.pitches:
                continue
            start, dur = float(item["offsetSeconds"]), float(item["durationSeconds"])
            i0 = int(start * sample_rate)
            if i0 >= n or dur <= 0:
                continue
            i1 = min(n, i0 + int(dur * sample_rate))
            t = np.arange(i1 - i0) / sample_rate
            env = np.minimum(1.0, t / 0.01) * (np.exp(-3.0 * t) if fam == "keyboard" else 1.0)
            for p in el.pitches:
                f0 = float(p.frequency)
                for h, a in enumerate(profiles.get(fam, [1.0]), start=1):
                    if f0 * h < sample_rate / 2:
                        out[i0:i1] += 0.1 * a * env * np.sin(2 * np.pi * f0 * h * t)
    peak = float(np.abs(out).max()) if n else 0.0
    return (out / peak * 0.9 if peak > 0 else out).astype(np.float32)


# ----------------------------------------------------------------------------------------------- selection


def select_corpus_pieces(
    per_source: int = 40,
    max_pieces: int = 400,
    seed: int = 0,
    max_per_file_sources: dict[str, int] | None = None,
) -> list[tuple[str, str]]:
    """Pick pieces from the music21 corpus, at most ``per_source`` per composer/collection folder.

    Returns:
        ``[(corpus_folder, path), ...]`` in an order shuffled with ``seed`` (never alphabetical, so that a
        partial build covers every folder), the same for the same seed and corpus.

    """
    from music21 import corpus

    limits = {"essenFolksong": 10, **(max_per_file_sources or {})}
    by_folder: dict[str, list[str]] = {}
    for p in corpus.getCorePaths():
        parts = Path(p).parts
        folder = parts[parts.index("corpus") + 1] if "corpus" in parts else Path(p).parent.name
        if folder in _SKIP_FOLDERS or Path(p).suffix in (".rntxt",) or Path(p).stem.endswith("_old"):
            continue
        by_folder.setdefault(folder, []).append(str(p))
    for folder, paths in by_folder.items():  # one file per piece when a piece exists in several formats
        by_stem: dict[str, str] = {}
        for f in sorted(paths, key=lambda f: (Path(f).suffix != ".mxl", f)):
            by_stem.setdefault(str(Path(f).with_suffix("")), f)
        by_folder[folder] = sorted(by_stem.values())
    rng = random.Random(seed)
    chosen: list[tuple[str, str]] = []
    for folder in sorted(by_folder):
        paths = sorted(by_folder[folder])
        rng.shuffle(paths)
        chosen += [(folder, p) for p in paths[: min(per_source, limits.get(folder, per_source))]]
    rng.shuffle(chosen)
    return chosen[:max_pieces]


def split_of(key: str) -> str:
    """70/10/20 train/val/test split by a stable hash of the piece's group key."""
    h = int(hashlib.sha1(key.encode()).hexdigest(), 16) % 10
    return "train" if h < 7 else ("val" if h == 7 else "test")


def _corpus_relative(folder: str, path: str) -> str:
    """``folder/sub/name.ext``: the path below the music21 corpus root (unique per file)."""
    parts = Path(path).parts
    return "/".join(parts[parts.index(folder) :]) if folder in parts else f"{folder}/{Path(path).name}"


def _group_key(folder: str, path: str) -> str:
    """Movements of one work share a split: group by file stem without trailing numbers."""
    if folder == "palestrina":  # Kyrie_03, Gloria_03, ...: movements of mass 3
        return f"palestrina/mass{re.sub(r'^[A-Za-z]+_?', '', Path(path).stem) or '0'}"
    stem = re.sub(r"[_\-.]?\d+$", "", Path(path).stem)
    return f"{folder}/{Path(path).parent.name}/{stem}"


# ----------------------------------------------------------------------------------------------- build


@dataclass
class ScoreDatasetConfig:
    """Settings of :func:`build_score_dataset`.

    Attributes:
        out_dir: output folder.
        per_source: pieces per composer/collection folder (see :func:`select_corpus_pieces`).
        max_pieces: pieces in all.
        clip_seconds: length of each clip (the start of the piece).
        sample_rate: output rate.
        renderer: ``"fluidsynth"`` (a General MIDI soundfont) or ``"sine"`` (additive synthesis, for tests).
        soundfont: a ``.sf2`` file; default Debian's ``fluid-soundfont-gm``.
        timeout: wall-clock seconds per piece (parse, MIDI export and render together).
        min_seconds: a shorter render is recorded as a failure.
        seed: the selection and the build order.
        max_render_seconds: hard cap on one render's duration. A render is also bounded by its MIDI file's
            length (+5 s) and by ``clip_seconds``, so this only matters when those cannot be read.
        max_render_bytes: hard cap on one render's raw output in bytes.
        fluidsynth: the FluidSynth command (a name on ``PATH`` or a path).
        retry_failed: render again the pieces that a previous run recorded as failed.

    """

    out_dir: str
    per_source: int = 40
    max_pieces: int = 400
    clip_seconds: float = 30.0
    sample_rate: int = 16000
    renderer: Literal["fluidsynth", "sine"] = "fluidsynth"
    soundfont: str | None = None
    timeout: float = 60.0
    min_seconds: float = 3.0
    seed: int = 0
    max_render_seconds: float = DEFAULT_MAX_SECONDS
    max_render_bytes: int = DEFAULT_MAX_BYTES
    fluidsynth: str = "fluidsynth"
    retry_failed: bool = False


def _parse_score(path: str) -> Any:
    from music21 import converter, stream

    if path.endswith(".abc"):  # collections of tunes: parse only the first one (whole books take minutes)
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        tunes = re.split(r"(?m)^(?=X:)", text)
        header = tunes[0] if not tunes[0].startswith("X:") else ""
        first = next((t for t in tunes if t.startswith("X:")), text)
        score = converter.parse(header + first, format="abc")
    else:
        score = converter.parse(path)
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    return score


def _render_piece(
    folder: str,
    path: str,
    cfg: ScoreDatasetConfig,
    audio_path: Path,
    tmp: Path,
    on_start: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Parse, tag, crop and render one piece into ``audio_path`` (FLAC); temporary files go to ``tmp``."""
    import soundfile as sf

    score = _parse_score(path)
    tags = score_tags(score, folder)
    cropped = _crop(score, cfg.clip_seconds + 2.0)
    extra: dict[str, Any] = {}
    if cfg.renderer == "sine":
        y = render_sine(cropped, cfg.sample_rate, cfg.clip_seconds, tags.families)
    else:
        sf2 = find_soundfont(cfg.soundfont)
        if sf2 is None:
            raise RuntimeError(
                "no General MIDI soundfont found (Debian: apt-get install fluid-soundfont-gm), "
                "pass --soundfont FILE.sf2 or --renderer sine"
            )
        _set_programs(cropped, tags.families)
        mid = tmp / "piece.mid"
        try:
            cropped.write("midi", fp=str(mid))
        except Exception:  # music21's MIDI export trips on some measure structures: export the events only
            _events_only(cropped).write("midi", fp=str(mid))
        res = render_fluidsynth(
            mid,
            sf2,
            cfg.sample_rate,
            timeout=cfg.timeout,
            max_seconds=min(cfg.clip_seconds, cfg.max_render_seconds),
            max_bytes=cfg.max_render_bytes,
            executable=cfg.fluidsynth,
            on_start=on_start,
        )
        extra = {"midi_seconds": None if res.midi_seconds is None else round(res.midi_seconds, 2),
                 "render_stopped_at_cap": res.truncated}
        y = res.audio[: int(cfg.clip_seconds * cfg.sample_rate)]
        # trim the silent tail that the synthesiser leaves after the last note
        loud = np.flatnonzero(np.abs(y) > 1e-4)
        y = y[: loud[-1] + 1] if loud.size else y[:0]
        peak = float(np.abs(y).max()) if y.size else 0.0
        if peak > 0:
            y = y / peak * 0.9
    if y.size < cfg.min_seconds * cfg.sample_rate:
        raise RuntimeError(f"rendered only {y.size / cfg.sample_rate:.1f} s (< {cfg.min_seconds} s)")
    partial = audio_path.with_name(audio_path.name + ".partial")
    sf.write(str(partial), y, cfg.sample_rate, format="FLAC")
    os.replace(partial, audio_path)
    title = (score.metadata.title if score.metadata is not None else None) or Path(path).stem
    return {**asdict(tags), **extra, "title": str(title), "seconds": round(y.size / cfg.sample_rate, 2)}


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds the render's try/finally, which kills FluidSynth's group


def _worker(
    folder: str, path: str, cfg: ScoreDatasetConfig, audio_path: Path, tmp: Path, out: Any, child: Any
) -> None:
    import warnings

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the builder, which stops this worker
    warnings.filterwarnings("ignore")

    def started(pgid: int) -> None:
        child.value = pgid

    try:
        out.put(("ok", _render_piece(folder, path, cfg, audio_path, tmp, started)))
    except Exception as e:
        out.put(("error", f"{type(e).__name__}: {e}"))
    finally:
        child.value = 0


def _stop_worker(proc: Any, child: Any) -> None:
    """Stop a piece's worker and whatever it started: SIGTERM, then SIGKILL, then the renderer's group."""
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
    if proc.is_alive():
        proc.kill()
    proc.join(5)
    if child.value:  # the worker was killed before its own clean-up ran
        kill_process_group(int(child.value))


def _build_one(
    folder: str, path: str, cfg: ScoreDatasetConfig, out: Path, tmp_root: Path, ctx: Any
) -> tuple[dict[str, Any], float]:
    """Render one piece in its own process; return its record and the seconds it took."""
    rel = _corpus_relative(folder, path)
    pid = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(Path(rel).with_suffix("")).replace("/", "__"))
    audio = out / "audio" / f"{pid}.flac"
    start = time.monotonic()
    status: str = "error"
    result: Any = f"timed out after {cfg.timeout:g} s"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        q: Any = ctx.Queue()
        child: Any = ctx.Value("i", 0)
        proc = ctx.Process(target=_worker, args=(folder, path, cfg, audio, Path(tmp), q, child), daemon=True)
        proc.start()
        try:
            while time.monotonic() < start + cfg.timeout:
                try:
                    status, result = q.get(timeout=0.2)
                    break
                except queue.Empty:
                    if not proc.is_alive() and q.empty():
                        status, result = "error", f"worker died (exit code {proc.exitcode})"
                        break
        finally:
            _stop_worker(proc, child)
            q.close()
            audio.with_name(audio.name + ".partial").unlink(missing_ok=True)
    group = _group_key(folder, path)
    rec: dict[str, Any] = {"id": pid, "source": rel, "group": group}
    if status == "ok":
        rec.update(result, path=f"audio/{pid}.flac", split=split_of(group))
    else:
        rec["error"] = result
        audio.unlink(missing_ok=True)
    seconds = time.monotonic() - start
    rec["seconds_to_build"] = round(seconds, 2)
    return rec, seconds


def _read_records(jsonl: Path) -> dict[str, dict[str, Any]]:
    """Records of ``pieces.jsonl`` by source; a partial line (a build killed while writing) is dropped."""
    if not jsonl.is_file():
        return {}
    text = jsonl.read_text(encoding="utf-8")
    done: dict[str, dict[str, Any]] = {}
    kept = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "source" in rec:
            done[rec["source"]] = rec
            kept.append(line)
    if len(kept) != len(text.splitlines()) or (text and not text.endswith("\n")):
        _atomic_write(jsonl, "".join(line + "\n" for line in kept))
    return done


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def build_score_dataset(
    cfg: ScoreDatasetConfig, pieces: Sequence[tuple[str, str]] | None = None, log: Any = print
) -> Path:
    """Render and tag corpus pieces into ``cfg.out_dir``, as it goes and resumably.

    Writes ``audio/<id>.flac``, ``tags.csv`` (``path,tags,split``; tags joined by ``;``),
    ``pieces.jsonl`` (everything derived per piece, and failures with their reason) and
    ``tag_counts.csv`` (positives per tag and split, and whether the tag is expected to transfer to real
    recordings: :data:`TAG_FAMILIES`). After each piece its record is appended to ``pieces.jsonl`` and its
    row to ``tags.csv`` (both flushed), so an interrupted build loses nothing; a rerun skips the pieces
    already recorded. Pieces are processed in an order shuffled with ``cfg.seed``. Each piece runs in its
    own process with a wall-clock limit; renders are bounded in duration and bytes
    (:func:`~attnkit.audio.tagging.render.render_fluidsynth`); temporary files live in
    ``OUT_DIR/.render-tmp`` and are removed whatever ends the build (a folder left by a killed build is
    removed by the next run).

    Args:
        cfg: settings.
        pieces: ``[(corpus_folder, score_path)]``; default :func:`select_corpus_pieces`.
        log: called with progress lines (count, rate, ETA).

    Returns:
        The output folder.

    """
    out = Path(cfg.out_dir)
    audio_dir = out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    tmp_root = out / ".render-tmp"
    shutil.rmtree(tmp_root, ignore_errors=True)  # left behind by a build that was killed
    for stale in audio_dir.glob("*.partial"):
        stale.unlink()
    if pieces is None:
        log("selecting pieces from the music21 corpus ...")
    order = list(
        pieces if pieces is not None else select_corpus_pieces(cfg.per_source, cfg.max_pieces, cfg.seed)
    )
    random.Random(cfg.seed).shuffle(order)
    jsonl = out / "pieces.jsonl"
    done = _read_records(jsonl)
    if cfg.retry_failed:
        done = {k: r for k, r in done.items() if "error" not in r}
    _write_tables(out, list(done.values()))  # tags.csv agrees with pieces.jsonl before rows are appended
    todo = [(f, p) for f, p in order if _corpus_relative(f, p) not in done]
    if len(todo) < len(order):
        log(f"resuming: {len(order) - len(todo)} of {len(order)} pieces already in {jsonl}")
    ctx = mp.get_context("fork")
    t0 = time.monotonic()
    try:
        with jsonl.open("a", encoding="utf-8") as fh_json, (out / "tags.csv").open(
            "a", newline="", encoding="utf-8"
        ) as fh_tags:
            tag_rows = csv.writer(fh_tags)
            for k, (folder, path) in enumerate(todo, start=1):
                rec, took = _build_one(folder, path, cfg, out, tmp_root, ctx)
                done[rec["source"]] = rec
                fh_json.write(json.dumps(rec) + "\n")
                fh_json.flush()
                if "error" not in rec:
                    tag_rows.writerow([rec["path"], ";".join(rec["tags"]), rec["split"]])
                    fh_tags.flush()
                elapsed = time.monotonic() - t0
                eta = elapsed / k * (len(todo) - k)
                what = "ok " + " ".join(rec["tags"]) if "error" not in rec else rec["error"]
                log(
                    f"[{len(order) - len(todo) + k}/{len(order)}] {rec['source']}: {what} ({took:.1f} s) | "
                    f"{k / elapsed * 60:.1f} pieces/min, elapsed {_duration(elapsed)}, ETA {_duration(eta)}"
                )
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
        _write_tables(out, list(done.values()))
    return out


def _write_tables(out: Path, records: list[dict[str, Any]]) -> None:
    """Write ``tags.csv`` (sorted by id) and ``tag_counts.csv`` from the records, each atomically."""
    ok = [r for r in records if "error" not in r]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "tags", "split"])
    for r in sorted(ok, key=lambda r: r["id"]):
        w.writerow([r["path"], ";".join(r["tags"]), r["split"]])
    _atomic_write(out / "tags.csv", buf.getvalue())
    counts: dict[str, Counter[str]] = {}
    for r in ok:
        for t in r["tags"]:
            counts.setdefault(t, Counter())[r["split"]] += 1
    n = Counter(r["split"] for r in ok)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["tag", "train", "val", "test", "total", "fraction", "transfers_to_real_audio"])
    for t in sorted(counts, key=lambda t: (-sum(counts[t].values()), t)):
        c = counts[t]
        total = sum(c.values())
        transfers = "yes" if tag_transfers(t) else "no"
        w.writerow([t, c["train"], c["val"], c["test"], total, f"{total / max(len(ok), 1):.3f}", transfers])
    w.writerow(["(pieces)", n["train"], n["val"], n["test"], len(ok), "1.000", ""])
    _atomic_write(out / "tag_counts.csv", buf.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m attnkit.audio.tagging.scores OUT_DIR``: build the score-rendered tagging dataset."""
    p = argparse.ArgumentParser(
        prog="python -m attnkit.audio.tagging.scores",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out_dir", help="output folder, e.g. $ATTNKIT_DATA_DIR/tagging-scores")
    p.add_argument("--per-source", type=int, default=40, help="pieces per composer/collection folder")
    p.add_argument("--max-pieces", type=int, default=400)
    p.add_argument("--clip-seconds", type=float, default=30.0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--renderer", choices=["fluidsynth", "sine"], default="fluidsynth")
    p.add_argument("--soundfont", default=None, help="GM .sf2 (default: Debian fluid-soundfont-gm)")
    p.add_argument("--fluidsynth", default="fluidsynth", help="the FluidSynth command (default: on PATH)")
    p.add_argument("--timeout", type=float, default=60.0, help="wall-clock seconds per piece")
    p.add_argument(
        "--max-render-seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        help="hard cap on one render's duration (renders are also bounded by the MIDI length and the clip)",
    )
    p.add_argument(
        "--max-render-bytes", type=int, default=DEFAULT_MAX_BYTES, help="hard cap on one render's raw output"
    )
    p.add_argument("--retry-failed", action="store_true", help="render again pieces recorded as failed")
    p.add_argument("--seed", type=int, default=0, help="selection and build order")
    a = p.parse_args(argv)
    cfg = ScoreDatasetConfig(
        a.out_dir,
        per_source=a.per_source,
        max_pieces=a.max_pieces,
        clip_seconds=a.clip_seconds,
        sample_rate=a.sample_rate,
        renderer=a.renderer,
        soundfont=a.soundfont,
        timeout=a.timeout,
        seed=a.seed,
        max_render_seconds=a.max_render_seconds,
        max_render_bytes=a.max_render_bytes,
        fluidsynth=a.fluidsynth,
        retry_failed=a.retry_failed,
    )
    if cfg.renderer == "fluidsynth" and (
        shutil.which(cfg.fluidsynth) is None or find_soundfont(a.soundfont) is None
    ):
        print(
            "fluidsynth or a GM soundfont is missing: apt-get install fluidsynth fluid-soundfont-gm, or pass "
            "--renderer sine (a plain additive synthesiser)",
            file=sys.stderr,
        )
        return 2
    try:
        build_score_dataset(cfg, log=lambda s: print(s, flush=True))
    except KeyboardInterrupt:
        print(f"interrupted: what was built is kept in {cfg.out_dir}; run again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
