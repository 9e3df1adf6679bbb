"""Score-rendered dataset: tags from metadata, rendering, the builder's bookkeeping."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from music21 import corpus, meter, note, stream, tempo

from attnkit.audio.tagging.formats import read_tag_csv
from attnkit.audio.tagging.scores import (
    TAG_FAMILIES,
    ScoreDatasetConfig,
    build_score_dataset,
    find_soundfont,
    instrument_family,
    render_sine,
    score_tags,
    select_corpus_pieces,
    tag_transfers,
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


def test_selection_is_seeded_shuffled_and_balanced() -> None:
    a = select_corpus_pieces(per_source=3, max_pieces=1000)
    assert a == select_corpus_pieces(per_source=3, max_pieces=1000)
    folders = [f for f, _ in a]
    assert max(folders.count(f) for f in set(folders)) == 3 and "demos" not in folders
    assert not any(p.endswith(".rntxt") for _, p in a)
    assert a != sorted(a)  # not alphabetical: a partial build is not biased to the first composers
    b = select_corpus_pieces(per_source=3, max_pieces=1000, seed=1)
    assert b != a and b == select_corpus_pieces(per_source=3, max_pieces=1000, seed=1)
    first = [f for f, _ in a[:30]]
    assert len(set(first)) >= 8  # the first pieces already span many folders


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
    assert counts[0] == ["tag", "train", "val", "test", "total", "fraction", "transfers_to_real_audio"]
    assert counts[-1][0] == "(pieces)"
    assert {r[0]: r[-1] for r in counts[1:-1]}["instrument:voices"] == "yes"
    assert {r[0]: r[-1] for r in counts[1:-1]}["composer:bach"] == "no"
    # resumable: a second run renders nothing new
    lines: list[str] = []
    build_score_dataset(cfg, pieces, log=lines.append)
    assert lines == [f"resuming: 3 of 3 pieces already in {out / 'pieces.jsonl'}"]


@pytest.mark.skipif(shutil.which("fluidsynth") is None or find_soundfont() is None,
                    reason="needs Debian packages fluidsynth and fluid-soundfont-gm")
def test_fluidsynth_rendering(tmp_path: Path) -> None:
    pieces = [("bach", str(corpus.getWork("bach/bwv66.6")))]
    out = build_score_dataset(ScoreDatasetConfig(str(tmp_path), clip_seconds=5.0), pieces, log=lambda s: None)
    y, sr = sf.read(str(next((out / "audio").iterdir())))
    assert sr == 16000 and 4.0 < y.size / sr <= 5.0 and np.abs(y).max() > 0.5


def test_tag_vocabulary_states_what_transfers() -> None:
    assert tag_transfers("instrument:strings") and tag_transfers("tempo:fast")
    for tag in ("composer:bach", "era:baroque", "metre:triple", "mode:major", "texture:polyphonic"):
        assert not tag_transfers(tag)
    assert {f.prefix for f in TAG_FAMILIES} == {"instrument", "tempo", "texture", "era", "composer", "mode", "metre"}
    with pytest.raises(ValueError, match="genre:rock"):
        tag_transfers("genre:rock")


CHORALES = ["bach/bwv66.6", "bach/bwv1.6", "bach/bwv10.7", "bach/bwv101.7", "bach/bwv102.7"]


def _chorales() -> list[tuple[str, str]]:
    return [("bach", str(corpus.getWork(w))) for w in CHORALES]


def test_interrupted_build_keeps_its_rows_and_resumes_without_duplicates(tmp_path: Path) -> None:
    pieces = _chorales()
    cfg = ScoreDatasetConfig(str(tmp_path / "ds"), renderer="sine", clip_seconds=3.5, timeout=120)
    seen: list[int] = []

    def interrupt_after_two(line: str) -> None:
        rows = list(csv.reader((tmp_path / "ds" / "tags.csv").open()))
        seen.append(len(rows) - 1)  # the piece's row is on disk before its progress line
        assert re.search(r"^\[\d+/5\] bach/.*\\| [\d.]+ pieces/min, elapsed \S+, ETA \S+$", line), line
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_score_dataset(cfg, pieces, log=interrupt_after_two)
    assert seen == [1, 2]
    ds = tmp_path / "ds"
    assert len(read_tag_csv(ds / "tags.csv")) == 2 and len((ds / "pieces.jsonl").read_text().splitlines()) == 2
    assert not (ds / ".render-tmp").exists() and not list((ds / "audio").glob("*.partial"))
    with (ds / "pieces.jsonl").open("a") as fh:  # a build killed while writing a record
        fh.write('{"id": "half-writ')
    build_score_dataset(cfg, pieces, log=lambda s: None)
    resumed = (ds / "tags.csv").read_text()
    # the same table as a build that was never interrupted, no duplicates
    full = build_score_dataset(ScoreDatasetConfig(str(tmp_path / "full"), renderer="sine", clip_seconds=3.5,
                                                  timeout=120), pieces, log=lambda s: None)
    assert resumed == (full / "tags.csv").read_text()
    clips = read_tag_csv(ds / "tags.csv")
    assert len(clips) == 5 and len({c.path for c in clips}) == 5
    assert len((ds / "pieces.jsonl").read_text().splitlines()) == 5


def _corpus_names(pieces: list[tuple[str, str]]) -> list[str]:
    return [f"bach/{Path(p).name}" for _, p in pieces]


def test_build_order_is_shuffled_with_the_seed(tmp_path: Path) -> None:
    pieces = [("bach", str(tmp_path / f"missing{i}.xml")) for i in range(6)]  # fail fast, order still recorded

    def order(seed: int, name: str) -> list[str]:
        cfg = ScoreDatasetConfig(str(tmp_path / name), renderer="sine", seed=seed, timeout=60)
        out = build_score_dataset(cfg, pieces, log=lambda s: None)
        return [json.loads(x)["source"] for x in (out / "pieces.jsonl").read_text().splitlines()]

    a = order(0, "a")
    assert sorted(a) == sorted(_corpus_names(pieces)) and len(a) == 6
    assert a == order(0, "b") and a != order(1, "c") and a != sorted(a)


def _build_with_fake_fluidsynth(tmp_path: Path, exe: Path, timeout: float) -> tuple[Path, dict[str, object]]:
    """Build one chorale with ``exe`` standing in for fluidsynth; return the folder and the piece's record."""
    sf2 = tmp_path / "fake.sf2"
    sf2.write_bytes(b"not read by the fake")
    cfg = ScoreDatasetConfig(str(tmp_path / "ds"), clip_seconds=4.0, timeout=timeout, soundfont=str(sf2),
                             fluidsynth=str(exe))
    out = build_score_dataset(cfg, [("bach", str(corpus.getWork("bach/bwv66.6")))], log=lambda s: None)
    (rec,) = [json.loads(x) for x in (out / "pieces.jsonl").read_text().splitlines()]
    return out, rec


def test_render_stops_at_the_cap_in_the_builder_and_cleans_up(
    tmp_path: Path, fake_renderer: Callable[..., Path], no_processes_left: Callable[[str], None]
) -> None:
    """A renderer that never stops (a score that would play for hours) yields a clip of the cap's length."""
    out, rec = _build_with_fake_fluidsynth(tmp_path, fake_renderer(endless=True), timeout=120)
    assert "error" not in rec and rec["render_stopped_at_cap"] is True
    assert rec["seconds"] == pytest.approx(4.0, abs=0.01)
    assert not (out / ".render-tmp").exists()
    no_processes_left(str(tmp_path))


def test_a_hung_render_is_stopped_with_its_process_group(
    tmp_path: Path, fake_renderer: Callable[..., Path], no_processes_left: Callable[[str], None]
) -> None:
    out, rec = _build_with_fake_fluidsynth(tmp_path, fake_renderer(endless=False), timeout=4.0)
    assert "timed out" in str(rec["error"]) or "RenderTimeoutError" in str(rec["error"])
    assert not (out / ".render-tmp").exists() and list((out / "audio").iterdir()) == []
    no_processes_left(str(tmp_path))
