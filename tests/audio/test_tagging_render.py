"""Bounded rendering: MIDI length, output caps, timeouts, and no process left behind.

The cap and clean-up are tested with a fake renderer (a script that writes to its standard output
without end and starts a grandchild), so they are tested whether or not FluidSynth is installed; the
FluidSynth tests skip without it.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from attnkit.audio.tagging.render import (
    RenderTimeoutError,
    find_soundfont,
    midi_seconds,
    render_fluidsynth,
    run_capped,
)

HAVE_FLUIDSYNTH = shutil.which("fluidsynth") is not None and find_soundfont() is not None


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    while n > 0x7F:
        n >>= 7
        out.append(0x80 | (n & 0x7F))
    return bytes(reversed(out))


def write_midi(path: Path, segments: list[tuple[int, int]], tpq: int = 480) -> Path:
    """One held note across ``segments`` of ``(ticks, microseconds per quarter)``; returns ``path``."""
    ev = b"\x00\xc0\x00" + b"\x00\x90\x3c\x64"  # piano, note on
    pending = 0
    for ticks, us in segments:
        ev += _vlq(pending) + b"\xff\x51\x03" + us.to_bytes(3, "big")  # set tempo
        pending = ticks
    ev += _vlq(pending) + b"\x80\x3c\x00" + b"\x00\xff\x2f\x00"  # note off, end of track
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(ev)) + ev)
    return path


def hours_long_midi(path: Path, hours: float = 10.0) -> Path:
    """A valid MIDI file whose single note lasts ``hours`` (at 120 quarters per minute)."""
    return write_midi(path, [(round(hours * 3600 * 960), 500_000)])


def test_midi_seconds_applies_the_tempo_map(tmp_path: Path) -> None:
    # 960 ticks at 120/min (1 s), then 960 ticks at 60/min (2 s)
    assert midi_seconds(write_midi(tmp_path / "a.mid", [(960, 500_000), (960, 1_000_000)])) == pytest.approx(3.0)
    assert midi_seconds(hours_long_midi(tmp_path / "b.mid", 10.0)) == pytest.approx(36_000.0)


def test_midi_seconds_of_a_music21_export(tmp_path: Path) -> None:
    from music21 import meter, note, stream, tempo

    p = stream.Part()
    p.append(meter.TimeSignature("4/4"))
    p.append(tempo.MetronomeMark(number=60))
    for _ in range(8):
        p.append(note.Note("C4", quarterLength=1.0))
    s = stream.Score()
    s.insert(0, p)
    s.write("midi", fp=str(tmp_path / "m.mid"))
    assert 8.0 <= midi_seconds(tmp_path / "m.mid") <= 10.0  # 8 quarters at 60/min, plus music21's lead-in


def test_midi_seconds_names_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"RIFF not midi")
    with pytest.raises(ValueError, match=r"bad\.mid"):
        midi_seconds(bad)
    cut = tmp_path / "cut.mid"
    cut.write_bytes(hours_long_midi(tmp_path / "ok.mid").read_bytes()[:20])
    with pytest.raises(ValueError, match=r"cut\.mid"):
        midi_seconds(cut)


def test_endless_output_stops_at_the_byte_cap_and_kills_the_group(
    tmp_path: Path, fake_renderer: Callable[..., Path], no_processes_left: Callable[[str], None]
) -> None:
    exe = fake_renderer(endless=True)
    res = run_capped([str(exe)], max_bytes=300_000, timeout=120)
    assert res.truncated and res.returncode is None and len(res.data) == 300_000
    no_processes_left(str(tmp_path))  # the fake and its grandchild


def test_silent_hang_times_out_and_kills_the_group(
    tmp_path: Path, fake_renderer: Callable[..., Path], no_processes_left: Callable[[str], None]
) -> None:
    exe = fake_renderer(endless=False)
    with pytest.raises(RenderTimeoutError, match="fake-fluidsynth"):
        run_capped([str(exe)], max_bytes=1000, timeout=1.0)
    no_processes_left(str(tmp_path))


def test_interrupt_while_rendering_kills_the_group(
    tmp_path: Path, fake_renderer: Callable[..., Path], no_processes_left: Callable[[str], None]
) -> None:
    exe = fake_renderer(endless=True)
    groups: list[int] = []

    def interrupt(pgid: int) -> None:
        groups.append(pgid)
        time.sleep(0.5)  # let the grandchild start
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_capped([str(exe)], max_bytes=10**9, timeout=120, on_start=interrupt)
    assert len(groups) == 1
    no_processes_left(str(tmp_path))


def test_render_with_a_fake_fluidsynth_is_capped_by_max_seconds(
    tmp_path: Path, fake_renderer: Callable[..., Path], no_processes_left: Callable[[str], None]
) -> None:
    midi = hours_long_midi(tmp_path / "long.mid")
    exe = fake_renderer(endless=True)
    res = render_fluidsynth(midi, tmp_path / "none.sf2", 16000, max_seconds=2.0, executable=str(exe))
    assert res.truncated and res.audio.shape == (32000,) and res.audio.dtype == np.float32
    assert res.midi_seconds == pytest.approx(36_000.0) and res.limit_seconds == 2.0
    # the byte cap wins when it is lower than the duration cap
    res = render_fluidsynth(midi, tmp_path / "none.sf2", 16000, max_seconds=2.0, max_bytes=4000, executable=str(exe))
    assert res.truncated and res.audio.shape == (1000,)
    no_processes_left(str(tmp_path))


def test_missing_fluidsynth_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="apt-get install fluidsynth"):
        render_fluidsynth(tmp_path / "x.mid", tmp_path / "x.sf2", executable="no-such-fluidsynth-here")


@pytest.mark.skipif(not HAVE_FLUIDSYNTH, reason="needs Debian packages fluidsynth and fluid-soundfont-gm")
def test_fluidsynth_render_of_a_ten_hour_midi_stops_at_the_cap(
    tmp_path: Path, no_processes_left: Callable[[str], None]
) -> None:
    midi = hours_long_midi(tmp_path / "ten-hours.mid")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp)
    try:
        res = render_fluidsynth(midi, find_soundfont(), 16000, max_seconds=3.0, timeout=120)
    finally:
        if old is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = old
    assert res.truncated and res.audio.shape == (48000,) and np.abs(res.audio[:8000]).max() > 0.01
    assert list(tmp.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["ten-hours.mid", "tmp"]
    no_processes_left(str(midi))


@pytest.mark.skipif(not HAVE_FLUIDSYNTH, reason="needs Debian packages fluidsynth and fluid-soundfont-gm")
def test_fluidsynth_render_of_a_short_midi_is_complete(tmp_path: Path) -> None:
    midi = write_midi(tmp_path / "one-second.mid", [(960, 500_000)])
    res = render_fluidsynth(midi, find_soundfont(), 16000, tail_seconds=5.0)
    assert not res.truncated and res.midi_seconds == pytest.approx(1.0)
    assert 16000 <= res.audio.size <= 6 * 16000  # the note plus FluidSynth's release, within the 5 s tail
    assert np.abs(res.audio[:8000]).max() > 0.01
