"""PhysioNet/CinC Challenge 2012 from its distribution format, processed as in the SAITS paper.

Each record ``set-x/<RecordID>.txt`` is a ``Time,Parameter,Value`` table with ``HH:MM`` times over 48 hours.
Processing (Du et al. 2023, and the authors' generating script):

* times are floored to the hour and the values of a parameter within an hour are averaged;
* records whose measurements all fall into one hour (only the static descriptors) are dropped:
  12 of 12,000, leaving 11,988;
* hours 0..47 are kept (a few records reach hour 48);
* the static descriptors Age, Gender, ICUType and Height (and the RecordID row) are dropped, leaving the 37
  time-varying parameters in sorted order; values are kept as recorded (no sentinel replacement).

Result: ``(11988, 48, 37)`` float32 with NaN for missing values (about 80% missing).
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnkit.core.errors import DataFormatError, DataNotFoundError

__all__ = ["PHYSIONET_STATIC", "PhysioNet2012", "load_physionet2012", "read_physionet_record"]

PHYSIONET_STATIC = ("RecordID", "Age", "Gender", "ICUType", "Height")
_SETS = ("set-a", "set-b", "set-c")
_VERSION = "1"
NUM_HOURS = 48


@dataclass
class PhysioNet2012:
    """Processed PhysioNet-2012.

    Attributes:
        x: ``(N, 48, F)`` float32, NaN = missing.
        record_ids: ``(N,)`` int64.
        features: the ``F`` parameter names.
        labels: ``(N,)`` in-hospital death (0/1), or -1 when no Outcomes file covers the record.
    """

    x: np.ndarray
    record_ids: np.ndarray
    features: list[str]
    labels: np.ndarray


def read_physionet_record(text: str) -> dict[str, dict[int, list[float]]]:
    """Parse one record's ``Time,Parameter,Value`` text into ``{parameter: {hour: [values]}}``.

    Raises:
        ValueError: the header or a line is malformed (names the line).
    """
    lines = text.splitlines()
    if not lines or lines[0].strip().replace(" ", "") != "Time,Parameter,Value":
        head = lines[0] if lines else ""
        raise ValueError(f"a PhysioNet-2012 record starts with 'Time,Parameter,Value', got {head!r}")
    out: dict[str, dict[int, list[float]]] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            t, param, value = line.split(",")
            hour = int(t.split(":")[0])
            v = float(value)
        except ValueError:
            raise ValueError(f"line {n} is not 'HH:MM,Parameter,Value': {line!r}") from None
        if not param:  # a few raw lines have an empty parameter name; they carry no variable
            continue
        out.setdefault(param, {}).setdefault(hour, []).append(v)
    return out


def _records(root: Path) -> Iterator[tuple[int, str]]:
    found = False
    for name in _SETS:
        folder, archive = root / name, root / f"{name}.tar.gz"
        if folder.is_dir():
            found = True
            for p in sorted(folder.glob("*.txt")):
                yield int(p.stem), p.read_text()
        elif archive.is_file():
            found = True
            with tarfile.open(archive, "r:gz") as tar:
                for m in tar:
                    if m.isfile() and m.name.endswith(".txt"):
                        f = tar.extractfile(m)
                        assert f is not None
                        yield int(Path(m.name).stem), io.TextIOWrapper(f, encoding="utf-8").read()
    if not found:
        raise DataNotFoundError(
            f"no PhysioNet-2012 records under {root}: expected set-a.tar.gz / set-b.tar.gz / set-c.tar.gz "
            "(or extracted set-a/ ... folders of <RecordID>.txt files). Run `attnkit datasets` to see where "
            "physionet2012 is expected, or pass root=..."
        )


def _outcomes(root: Path) -> dict[int, int]:
    labels: dict[int, int] = {}
    for s in "abc":
        p = root / f"Outcomes-{s}.txt"
        if not p.is_file():
            continue
        lines = p.read_text().splitlines()
        header = lines[0].split(",")
        if "RecordID" not in header or "In-hospital_death" not in header:
            raise DataFormatError(f"{p} has no RecordID / In-hospital_death columns: header {lines[0]!r}")
        i, j = header.index("RecordID"), header.index("In-hospital_death")
        for line in lines[1:]:
            if line.strip():
                cols = line.split(",")
                labels[int(cols[i])] = int(cols[j])
    return labels


def _process(root: Path, progress: bool = False) -> PhysioNet2012:
    from tqdm.auto import tqdm

    parsed: list[tuple[int, dict[str, dict[int, list[float]]]]] = []
    params: set[str] = set()
    for rid, text in tqdm(_records(root), desc="PhysioNet-2012 records", unit="record", disable=not progress,
                          leave=False):
        rec = read_physionet_record(text)
        hours = {h for by_hour in rec.values() for h in by_hour}
        if len(hours) <= 1:  # only the static descriptors: no time series
            continue
        parsed.append((rid, rec))
        params.update(rec)
    if not parsed:
        raise ValueError(f"no PhysioNet-2012 record under {root} has time-series data")
    parsed.sort(key=lambda r: r[0])
    features = sorted(params - set(PHYSIONET_STATIC))
    col = {f: i for i, f in enumerate(features)}
    x = np.full((len(parsed), NUM_HOURS, len(features)), np.nan, dtype=np.float32)
    for n, (_, rec) in enumerate(parsed):
        for param, by_hour in rec.items():
            j = col.get(param)
            if j is None:
                continue
            for h, vals in by_hour.items():
                if 0 <= h < NUM_HOURS:
                    x[n, h, j] = sum(vals) / len(vals)
    outcomes = _outcomes(root)
    ids = np.array([r for r, _ in parsed], dtype=np.int64)
    labels = np.array([outcomes.get(int(r), -1) for r in ids], dtype=np.int64)
    return PhysioNet2012(x, ids, features, labels)


def _fingerprint(root: Path) -> str:
    h = hashlib.sha256(_VERSION.encode())
    for name in sorted(os.listdir(root)):
        p = root / name
        if name.startswith(("set-", "Outcomes-")):
            st = p.stat()
            h.update(f"{name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def default_cache_dir(root: Path) -> Path:
    """``$ATTNKIT_CACHE_DIR/<dataset>`` or ``~/.cache/attnkit/processed/<dataset>`` (never the data root)."""
    from attnkit.core.data import cache_dir

    return cache_dir(root.name)


def load_physionet2012(root: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None,
                       progress: bool = True) -> PhysioNet2012:
    """Read and process PhysioNet-2012 under ``root``, caching the arrays.

    Processing the 12,000 records takes a minute or more; it happens once per copy of the data (the
    cache is keyed by the files' names, sizes and times) and prints where the arrays go.

    Args:
        root: folder with ``set-{a,b,c}.tar.gz`` (or extracted ``set-{a,b,c}/``) and ``Outcomes-{a,b,c}.txt``.
        cache_dir: where the processed ``.npz`` goes (default :func:`default_cache_dir`).
        progress: print what is processed and where it is cached, with a progress bar (stderr).

    Returns:
        :class:`PhysioNet2012` with ``x (N, 48, 37)``.
    """
    root = Path(root)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(root)
    path = cache / f"physionet2012-{_fingerprint(root)}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        return PhysioNet2012(z["x"], z["record_ids"], [str(f) for f in z["features"]], z["labels"])
    if progress:
        print(f"attnkit: processing the PhysioNet-2012 records under {root} once (1-2 minutes); caching "
              f"the arrays in {path}", file=sys.stderr)
    data = _process(root, progress=progress)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x=data.x, record_ids=data.record_ids, features=np.array(data.features), labels=data.labels)
        os.replace(tmp, path)
    except OSError as e:  # a read-only cache only costs time
        if progress:
            print(f"attnkit: could not cache the arrays in {path} ({e}); they will be processed again next "
                  "time (set ATTNKIT_CACHE_DIR to a writable folder)", file=sys.stderr)
    return data
