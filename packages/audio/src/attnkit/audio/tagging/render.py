"""Bounded MIDI rendering: a render never runs longer, or writes more, than its score asks for.

A synthesiser renders a MIDI file until its player reaches the end of the file. A malformed or
unusual score (a note that never ends, a tempo of a few beats per minute, an export that repeats a
section thousands of times) can therefore ask for hours of audio: rendered to a WAV file that is
gigabytes on disk. Here every render

- is bounded in duration: the expected length is read from the MIDI file (:func:`midi_seconds`:
  last event, tempo map applied) plus ``tail_seconds`` for the release, and never more than
  ``max_seconds``;
- is bounded in bytes: FluidSynth writes raw 16-bit stereo samples to a pipe (``-F -``), read here up
  to the byte length of that duration and at most ``max_bytes``; nothing is written to disk;
- is bounded in time: ``timeout`` seconds of wall clock;
- runs in its own process group (``start_new_session=True``), which is killed as a whole
  (``os.killpg``) when the render stops early or fails, whatever stops it (cap, timeout, an exception,
  ``KeyboardInterrupt``), so that no synthesiser process outlives the call.

:func:`run_capped` is the general part (any command that writes to standard output);
:func:`render_fluidsynth` applies it to FluidSynth.
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "CappedOutput",
    "RenderResult",
    "RenderTimeoutError",
    "find_soundfont",
    "kill_process_group",
    "midi_seconds",
    "render_fluidsynth",
    "run_capped",
]

#: Hard cap on one render's duration (seconds of audio) unless the caller passes another.
DEFAULT_MAX_SECONDS = 600.0
#: Hard cap on one render's raw output (bytes) unless the caller passes another: 256 MiB.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
_STDERR_KEEP = 8192


class RenderTimeoutError(TimeoutError):
    """A render took longer than its wall-clock limit (its process group has been killed)."""


@dataclass(frozen=True)
class CappedOutput:
    """What :func:`run_capped` collected.

    Attributes:
        data: standard output, at most ``max_bytes``.
        truncated: the command was stopped because its output reached ``max_bytes``.
        returncode: the exit status, or ``None`` when the command was stopped at the cap.
        stderr: the last 8 KiB of standard error.

    """

    data: bytes
    truncated: bool
    returncode: int | None
    stderr: str


@dataclass(frozen=True)
class RenderResult:
    """One bounded render.

    Attributes:
        audio: ``(N,)`` float32 mono signal in [-1, 1].
        sample_rate: its rate.
        truncated: the render was stopped at the cap (``limit_seconds``) before the synthesiser finished.
        midi_seconds: the MIDI file's length (``None`` when it could not be read; the hard cap applied).
        limit_seconds: the duration the render was allowed.

    """

    audio: np.ndarray
    sample_rate: int
    truncated: bool
    midi_seconds: float | None
    limit_seconds: float


def find_soundfont(path: str | None = None) -> Path | None:
    """Find a General MIDI soundfont: ``path`` if given, else Debian's ``fluid-soundfont-gm`` if installed."""
    candidates = (
        [path]
        if path
        else [
            "/usr/share/sounds/sf2/FluidR3_GM.sf2",
            "/usr/share/sounds/sf2/default-GM.sf2",
            "/usr/share/soundfonts/FluidR3_GM.sf2",
            "/usr/share/soundfonts/default.sf2",
        ]
    )
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


# ----------------------------------------------------------------------------------------------- MIDI length


def _vlq(buf: bytes, i: int, end: int) -> tuple[int, int]:
    value = 0
    for _ in range(4):
        if i >= end:
            raise ValueError("variable-length number runs past the end of its track")
        b = buf[i]
        i += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return value, i
    raise ValueError("variable-length number longer than 4 bytes")


def _track_events(buf: bytes, i: int, end: int) -> tuple[int, list[tuple[int, int]]]:
    """Walk one MTrk chunk; return its last tick and its tempo changes ``[(tick, us_per_quarter)]``."""
    tick, status, tempos = 0, 0, []
    while i < end:
        delta, i = _vlq(buf, i, end)
        tick += delta
        if i >= end:
            raise ValueError("event runs past the end of its track")
        b = buf[i]
        if b == 0xFF:  # meta event: FF type length data
            kind = buf[i + 1]
            length, i = _vlq(buf, i + 2, end)
            if kind == 0x51 and length == 3:
                tempos.append((tick, int.from_bytes(buf[i : i + 3], "big")))
            i += length
            if kind == 0x2F:  # end of track
                break
            continue
        if b in (0xF0, 0xF7):  # sysex: F0 length data
            length, i = _vlq(buf, i + 1, end)
            i += length
            continue
        if b & 0x80:
            status = b
            i += 1
        elif not status:
            raise ValueError(f"data byte 0x{b:02x} with no running status")
        i += 1 if status & 0xF0 in (0xC0, 0xD0) else 2
    return tick, tempos


def midi_seconds(path: str | os.PathLike[str]) -> float:
    """Length of a Standard MIDI File in seconds: its last event, with the tempo map applied.

    Args:
        path: a ``.mid`` file (format 0 or 1; SMPTE time division is supported).

    Returns:
        Seconds from the start to the last event of the longest track.

    Raises:
        ValueError: the file is not a Standard MIDI File or is truncated; the message names the file.

    """
    buf = Path(path).read_bytes()
    try:
        if buf[:4] != b"MThd":
            raise ValueError("no 'MThd' header")
        hlen = int.from_bytes(buf[4:8], "big")
        ntracks = int.from_bytes(buf[10:12], "big")
        division = int.from_bytes(buf[12:14], "big")
        i = 8 + hlen
        last_tick, tempos = 0, list[tuple[int, int]]()
        for n in range(ntracks):
            if buf[i : i + 4] != b"MTrk":
                raise ValueError(f"expected an 'MTrk' chunk at byte {i}")
            length = int.from_bytes(buf[i + 4 : i + 8], "big")
            end = i + 8 + length
            if end > len(buf):
                raise ValueError(f"track {n} is cut short ({len(buf)} bytes, the track ends at byte {end})")
            t, tt = _track_events(buf, i + 8, end)
            last_tick, tempos = max(last_tick, t), tempos + tt
            i += 8 + length
    except (IndexError, ValueError) as e:
        raise ValueError(f"{path}: not a readable Standard MIDI File ({e})") from None
    if division & 0x8000:  # SMPTE: -frames per second, ticks per frame
        fps = 256 - (division >> 8)
        return last_tick / (fps * (division & 0xFF))
    if division == 0:
        raise ValueError(f"{path}: MIDI header states 0 ticks per quarter note")
    seconds, tick, us = 0.0, 0, 500_000  # default tempo: 120 quarters per minute
    for t, new in sorted(tempos):
        if t >= last_tick:
            break
        seconds += (t - tick) * us / division / 1e6
        tick, us = t, new
    return seconds + (last_tick - tick) * us / division / 1e6


# ----------------------------------------------------------------------------------------------- processes


def kill_process_group(pgid: int, wait: float = 1.0) -> None:
    """Kill every process of group ``pgid`` (SIGKILL) and wait up to ``wait`` s for the group to be gone."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.01)


def run_capped(
    cmd: Sequence[str],
    *,
    max_bytes: int,
    timeout: float,
    on_start: Callable[[int], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> CappedOutput:
    """Run ``cmd`` in a new process group, collect at most ``max_bytes`` of its standard output.

    The command is stopped (its whole process group killed) as soon as its output passes ``max_bytes``
    or ``timeout`` seconds have passed. The process group is killed whatever ends the call, including
    an exception or ``KeyboardInterrupt`` raised while waiting.

    Args:
        cmd: the command and its arguments.
        max_bytes: the most bytes of standard output to keep; more stops the command (``truncated``).
        timeout: wall-clock seconds.
        on_start: called with the process group id once the command runs (e.g. to record it so that a
            supervising process can kill the group if this one is killed).
        env: the command's environment (default: this process's).

    Returns:
        The collected :class:`CappedOutput`.

    Raises:
        RenderTimeoutError: ``timeout`` passed before the command finished or reached the cap.

    """
    proc = subprocess.Popen(
        list(cmd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=None if env is None else dict(env),
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    truncated = False
    deadline = time.monotonic() + timeout
    try:
        if on_start is not None:
            on_start(proc.pid)
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            sel.register(proc.stderr, selectors.EVENT_READ)
            while sel.get_map() and not truncated:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RenderTimeoutError(f"{cmd[0]} ran longer than {timeout:g} s and was stopped")
                for key, _ in sel.select(min(left, 1.0)):
                    chunk = os.read(key.fd, 1 << 16)
                    if not chunk:
                        sel.unregister(key.fileobj)
                    elif key.fileobj is proc.stdout:
                        room = max_bytes - len(out)
                        out += chunk[:room]
                        truncated = len(chunk) > room
                        if truncated:
                            break
                    else:
                        err = (err + chunk)[-_STDERR_KEEP:]
        if truncated:
            return CappedOutput(bytes(out), True, None, err.decode(errors="replace"))
        try:
            code = proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise RenderTimeoutError(f"{cmd[0]} ran longer than {timeout:g} s and was stopped") from None
        return CappedOutput(bytes(out), False, code, err.decode(errors="replace"))
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the command and anything it started
        proc.stdout.close()
        proc.stderr.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        kill_process_group(proc.pid)  # what is left of the group (started meanwhile), then wait for it to go


# ----------------------------------------------------------------------------------------------- FluidSynth


def render_fluidsynth(
    midi: str | os.PathLike[str],
    soundfont: str | os.PathLike[str],
    sample_rate: int = 16000,
    *,
    timeout: float = 60.0,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    tail_seconds: float = 5.0,
    gain: float = 0.5,
    executable: str = "fluidsynth",
    on_start: Callable[[int], None] | None = None,
) -> RenderResult:
    """Render a MIDI file with the ``fluidsynth`` command, bounded in duration, bytes and time.

    The render is allowed ``min(midi_seconds(midi) + tail_seconds, max_seconds)`` seconds of audio (the
    hard cap alone when the file's length cannot be read) and at most ``max_bytes`` of raw output;
    FluidSynth writes 16-bit stereo samples to a pipe and is stopped, with its process group, when it
    reaches that limit. Nothing is written to disk.

    Args:
        midi: the MIDI file.
        soundfont: a General MIDI ``.sf2``.
        sample_rate: output rate.
        timeout: wall-clock seconds before the render is stopped with :class:`RenderTimeoutError`.
        max_seconds: hard cap on the audio duration.
        max_bytes: hard cap on the raw output (4 bytes per stereo sample).
        tail_seconds: allowed past the last MIDI event (release and reverb tails).
        gain: FluidSynth's master gain.
        executable: the ``fluidsynth`` command (name on ``PATH`` or a path).
        on_start: see :func:`run_capped`.

    Returns:
        The :class:`RenderResult` (``truncated`` when the cap stopped it).

    Raises:
        RuntimeError: FluidSynth is not installed or failed (its error output is in the message).
        RenderTimeoutError: the render took longer than ``timeout``.

    """
    exe = shutil.which(executable)
    if exe is None:
        raise RuntimeError(
            f"the `{executable}` command is not installed (Debian: apt-get install fluidsynth "
            "fluid-soundfont-gm), or use renderer='sine'"
        )
    try:
        length: float | None = midi_seconds(midi)
    except ValueError:
        length = None  # FluidSynth may still read it; the hard cap bounds it
    limit = max_seconds if length is None else min(length + tail_seconds, max_seconds)
    frames = min(math.ceil(limit * sample_rate), max_bytes // 4)
    cmd = [exe, "-ni", "-q", "-g", str(gain), "-r", str(sample_rate), "-T", "raw", "-O", "s16", "-E", "little"]
    # FluidSynth's audio libraries (libpulse) may leave a runtime folder in TMPDIR even when writing to a file:
    # give the process a private TMPDIR / XDG_RUNTIME_DIR that is removed with whatever it left
    with tempfile.TemporaryDirectory(prefix="attnkit-fluidsynth-") as private:
        res = run_capped(
            [*cmd, "-F", "-", str(soundfont), str(midi)],
            max_bytes=frames * 4,
            timeout=timeout,
            on_start=on_start,
            env={**os.environ, "TMPDIR": private, "XDG_RUNTIME_DIR": private},
        )
    if res.returncode not in (0, None):
        raise RuntimeError(f"fluidsynth failed on {midi} (exit {res.returncode}): {res.stderr.strip()[-500:]}")
    usable = len(res.data) // 4 * 4
    stereo = np.frombuffer(res.data[:usable], dtype="<i2").reshape(-1, 2)
    audio = (stereo.astype(np.float32).mean(axis=1) / 32768.0).astype(np.float32)
    return RenderResult(audio, sample_rate, res.truncated, length, frames / sample_rate)
