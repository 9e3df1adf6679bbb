"""Score-rendered dataset: tags from metadata, rendering, the builder's bookkeeping."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from music21 import corpus, meter, note, stream, tempo

from attnkit.audio.tagging.formats import read_tag_csv
from attnkit.audio.tagging.scores import (
    ScoreDatasetConfig,
    build_score_dataset,
    find_soundfont,
    instrument_family,
    render_sine,
    score_tags,
    select_corpus_pieces,
)


def test_instrument_family_prefers_part_names() -> None:
    assert instrument_family("Canto", "Piano", "Piano") == "voices"  # placeholder MIDI piano on a vocal part
    assert instrument_family("Violoncello", None, None) == "strings"
    assert instrument_family(None, None, "Harpsichord") == "keyboard"
    assert instrument_family("MusicXML Part", None, "TenorSaxophone") == "winds"
    assert instrument_family("Bassoon", None, None) == "winds"
    assert instrument_family(None, None, None) == "keyboard"  # no information: rendered on piano


def test_tags_of_a_bach_chorale() -> None:
    t = score_tags(corpus.parse("bach/bwv66.6"), "bach")
    assert t.families == ["voices"] * 4
    assert t.tags == ["instrument:voices", "texture:polyphonic", "era:baroque", "composer:bach", "mode:minor",
                      "metre:duple"]  # the file's Quarter=96 is playback-only: no tempo tag


def _melody(ts: str, bpm: float | None, pitches: list[str]) -> stream.Score:
    p = stream.Part()
    p.append(meter.TimeSignature(ts))
    if bpm:
        p.append(tempo.MetronomeMark(number=bpm))
    for n in pitches:
        p.append(note.Note(n, quarterLength=1.0))
    s = stream.Score()
    s.insert(0, p)
    return s


def test_tags_of_a_constructed_folk_tune() -> None:
    t = score_tags(_melody("6/8", 50, ["C4", "E4", "G4", "C5", "G4", "E4", "C4"]), "ryansMammoth")
    assert t.composer is None and "era:traditional" in t.tags and "texture:monophonic" in t.tags
    assert {"metre:compound", "tempo:slow", "mode:major", "instrument:keyboard"} <= set(t.tags)
    t = score_tags(_melody("3/4", None, ["A3", "C4", "E4", "A4", "E4", "C4", "A3"]), None)
    assert "metre:triple" in t.tags and "mode:minor" in t.tags
    assert not any(x.startswith(("tempo:", "era:", "composer:")) for x in t.tags)  # nothing stated, nothing tagged


def test_sine_renderer_plays_the_notes() -> None:
    y = render_sine(_melody("4/4", 120, ["A4"] * 4), 16000, 3.0)
    assert y.dtype == np.float32 and y.shape == (48000,)
    spec = np.abs(np.fft.rfft(y[:16000]))
    assert abs(np.argmax(spec) - 440) <= 2  # A4 at 440 Hz
    assert np.abs(y[40000:]).max() < 1e-6  # 4 beats at 120/min = 2 s, then silence


def test_selection_is_deterministic_and_balanced() -> None:
    a = select_corpus_pieces(per_source=3, max_pieces=1000)
    assert a == select_corpus_pieces(per_source=3, max_pieces=1000)
    folders = [f for f, _ in a]
    assert max(folders.count(f) for f in set(folders)) == 3 and "demos" not in folders
    assert not any(p.endswith(".rntxt") for _, p in a)


def test_builder_writes_readable_dataset_and_records_failures(tmp_path: Path) -> None:
    pieces = [("bach", str(corpus.getWork("bach/bwv66.6"))), ("ryansMammoth",
              str(corpus.getWork("ryansMammoth/BanishMisfortune"))), ("bach", str(tmp_path / "missing.xml"))]
    cfg = ScoreDatasetConfig(str(tmp_path / "ds"), renderer="sine", clip_seconds=4.0, timeout=60)
    out = build_score_dataset(cfg, pieces, log=lambda s: None)
    recs = [json.loads(x) for x in (out / "pieces.jsonl").read_text().splitlines()]
    assert sum("error" in r for r in recs) == 1
    clips = read_tag_csv(out / "tags.csv")
    assert len(clips) == 2 and all(c.path.is_file() for c in clips)
    info = sf.info(str(clips[0].path))
    assert info.samplerate == 16000 and 3.0 <= info.duration <= 4.0
    counts = list(csv.reader((out / "tag_counts.csv").open()))
    assert counts[0] == ["tag", "train", "val", "test", "total", "fraction"] and counts[-1][0] == "(pieces)"
    # resumable: a second run renders nothing new
    build_score_dataset(cfg, pieces, log=lambda s: pytest.fail("re-rendered " + s))


@pytest.mark.skipif(shutil.which("fluidsynth") is None or find_soundfont() is None,
                    reason="needs Debian packages fluidsynth and fluid-soundfont-gm")
def test_fluidsynth_rendering(tmp_path: Path) -> None:
    pieces = [("bach", str(corpus.getWork("bach/bwv66.6")))]
    out = build_score_dataset(ScoreDatasetConfig(str(tmp_path), clip_seconds=5.0), pieces, log=lambda s: None)
    y, sr = sf.read(str(next((out / "audio").iterdir())))
    assert sr == 16000 and 4.0 < y.size / sr <= 5.0 and np.abs(y).max() > 0.5
