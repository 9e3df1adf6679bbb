"""Readers for the formats users have: UCI PRSA air-quality CSVs, ETT CSVs, any CSV/Parquet table."""

from __future__ import annotations

import glob
import io
import logging
import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from attnkit.core.errors import DataFormatError, DataNotFoundError

__all__ = ["PRSA_COLUMNS", "PRSA_NUMERIC", "Categorical", "read_ett", "read_prsa", "read_table", "to_numeric_frame"]

PRSA_COLUMNS = ("No", "year", "month", "day", "hour", "PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP",
                "PRES", "DEWP", "RAIN", "wd", "WSPM", "station")
#: The 11 numeric variables the SAITS paper uses per station (12 stations -> 132 features).
PRSA_NUMERIC = ("PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP", "PRES", "DEWP", "RAIN", "WSPM")
_log = logging.getLogger(__name__)
_PRSA_NAME = re.compile(r"PRSA_Data_(?P<station>[A-Za-z]+)_\d{8}-\d{8}\.csv$")


def _prsa_sources(path: Path) -> list[tuple[str, bytes | Path]]:
    """(file name, path or bytes) of every PRSA station CSV in a folder or a (nested) zip archive."""
    out: list[tuple[str, bytes | Path]] = []
    if path.is_dir():
        for p in sorted(path.rglob("PRSA_Data_*.csv")):
            out.append((p.name, p))
        for z in sorted(path.glob("*.zip")) if not out else []:
            out.extend(_prsa_sources(z))
        return out
    if path.suffix == ".zip":
        def walk(zf: zipfile.ZipFile) -> None:
            for name in sorted(zf.namelist()):
                base = name.rsplit("/", 1)[-1]
                if _PRSA_NAME.search(base):
                    out.append((base, zf.read(name)))
                elif name.endswith(".zip"):
                    walk(zipfile.ZipFile(io.BytesIO(zf.read(name))))

        with zipfile.ZipFile(path) as zf:
            walk(zf)
        return out
    if _PRSA_NAME.search(path.name):
        return [(path.name, path)]
    return out


def read_prsa(path: str | os.PathLike[str], variables: Sequence[str] = PRSA_NUMERIC) -> pd.DataFrame:
    """Read the UCI Beijing Multi-Site Air-Quality station files into one wide hourly table.

    Args:
        path: a folder with ``PRSA_Data_<Station>_20130301-20170228.csv`` files (searched recursively),
            the UCI zip (nested zips are opened), or one station file.
        variables: numeric columns kept per station (default: the paper's 11).

    Returns:
        DataFrame indexed by hourly ``datetime``, columns ``<Station>_<variable>`` (stations sorted), NaN =
        missing. With the 12 stations and the default variables: 35,064 rows x 132 columns.

    Raises:
        FileNotFoundError: no station file found.
        ValueError: a file does not have the PRSA header (names the file and the difference).
    """
    src = _prsa_sources(Path(path))
    if not src:
        raise DataNotFoundError(
            f"no PRSA_Data_<Station>_<start>-<end>.csv files under {path}; download the UCI 'Beijing Multi-Site "
            "Air Quality' archive (dataset 501) and pass its folder or zip"
        )
    frames = []
    for name, s in src:
        df = pd.read_csv(io.BytesIO(s) if isinstance(s, bytes) else s, low_memory=False)
        missing = [c for c in PRSA_COLUMNS if c not in df.columns]
        if missing:
            raise DataFormatError(f"{name} is not a PRSA station file: columns {missing} are missing "
                             f"(expected header {','.join(PRSA_COLUMNS)})")
        bad = [v for v in variables if v not in PRSA_NUMERIC]
        if bad:
            raise DataFormatError(f"variables {bad} are not numeric PRSA columns; choose from {list(PRSA_NUMERIC)}")
        station = _PRSA_NAME.search(name)
        st = station.group("station") if station else str(df["station"].iloc[0])
        t = pd.to_datetime(df[["year", "month", "day", "hour"]])
        part = _coerce_numeric(df[list(variables)], name, "error", explicit=list(variables))
        part.index = pd.DatetimeIndex(t, name="datetime")
        part.columns = [f"{st}_{v}" for v in variables]
        frames.append(part[~part.index.duplicated()])
    wide = pd.concat(frames, axis=1).sort_index()
    return wide[sorted(wide.columns, key=lambda c: (c.rsplit("_", 1)[0], variables.index(c.rsplit("_", 1)[1])))]


def read_ett(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read an ETT CSV (``date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT``) indexed by ``date``."""
    df = pd.read_csv(path, low_memory=False)
    if "date" not in df.columns:
        raise DataFormatError(f"{path} has no 'date' column; ETT files start with date,HUFL,HULL,...")
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("date")), name="date")
    return to_numeric_frame(df, str(path))


def to_numeric_frame(df: pd.DataFrame, what: str = "the table") -> pd.DataFrame:
    """Check that every column is numeric and finite-or-NaN; return it as float64.

    Raises:
        ValueError: non-numeric columns or infinities (names them and the fix).
    """
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])]
    if bad:
        raise DataFormatError(
            f"{what} has non-numeric columns {bad}; pass columns=[...] with the numeric variables to impute, or "
            "time_column=... if one of them is the timestamp"
        )
    out = df.astype(np.float64)
    inf = [c for c in out.columns if np.isinf(out[c].to_numpy()).any()]
    if inf:
        raise DataFormatError(f"{what} has infinite values in columns {inf}; replace them with NaN to impute them")
    return out


Categorical = Literal["drop", "encode", "error"]


def _coerce_numeric(df: pd.DataFrame, what: str, categorical: Categorical,
                    explicit: Sequence[str] = ()) -> pd.DataFrame:
    """Turn number-like text columns into numbers and drop/encode/refuse the categorical ones.

    A text column whose non-empty values are at least 99% numbers (a stray blank or ``"NA"`` token) becomes
    numeric; the count of values turned into NaN is logged. Other non-numeric columns (text, booleans) are
    categorical: ``drop`` removes them (logged), ``encode`` replaces them by integer codes ``0..K-1`` in
    sorted order (NaN stays missing; logged), ``error`` raises. Columns named in ``explicit`` are never
    dropped: a categorical one is encoded, or refused under ``error``/``drop``.
    """
    out = df.copy()
    dropped, encoded = [], []
    for c in list(out.columns):
        col = out[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            continue
        if not pd.api.types.is_bool_dtype(col):
            num = pd.to_numeric(col.astype("string").str.strip(), errors="coerce")
            given = int(col.notna().sum())
            bad = int((col.notna() & num.isna()).sum())
            if given and bad <= 0.01 * given and bad < given:
                if bad:
                    _log.warning("%s: column %r: %d value(s) that are not numbers (e.g. %r) read as missing",
                                 what, c, bad, str(col[col.notna() & num.isna()].iloc[0]))
                out[c] = num.astype(np.float64)
                continue
        if categorical == "encode":
            cats = sorted(col.dropna().astype(str).unique())
            codes = {k: float(i) for i, k in enumerate(cats)}
            out[c] = [np.nan if pd.isna(v) else codes[str(v)] for v in col]
            encoded.append(f"{c} ({len(cats)} values)")
        elif categorical == "drop" and c not in explicit:
            out = out.drop(columns=[c])
            dropped.append(str(c))
        else:
            raise DataFormatError(
                f"{what} has non-numeric columns {[c]}; pass columns=[...] with the numeric variables to impute, "
                "time_column=... if it is the timestamp, or categorical='encode' to impute its integer codes"
            )
    if dropped:
        _log.warning("%s: non-numeric column(s) %s dropped (categorical='encode' keeps them as integer codes)",
                     what, dropped)
    if encoded:
        _log.warning("%s: categorical column(s) %s encoded as integer codes 0..K-1", what, encoded)
    return out


def _regularise(g: pd.DataFrame, freq: str | None, what: str) -> pd.DataFrame:
    """Put a time-indexed frame on a regular grid; missing steps become NaN rows.

    ``auto`` fills the gaps of a regular step; a pandas frequency (``"1h"``) averages the rows of each bin.
    """
    if freq is None or len(g) < 3 or not isinstance(g.index, pd.DatetimeIndex):
        return g
    if freq != "auto":
        out = g.resample(freq).mean()
        added = len(out) - int(out.notna().any(axis=1).sum())
        if added:
            _log.warning("%s: %d empty %s step(s) added as missing values", what, added, freq)
        return out
    diffs = g.index.to_series().diff().dropna()
    step = diffs.mode().iloc[0]
    if step <= pd.Timedelta(0):
        return g
    if ((diffs % step) != pd.Timedelta(0)).any():
        _log.warning("%s: irregular timestamps (most steps are %s, but not all gaps are multiples of it); "
                     "rows are used as they are -- pass freq='%s' (a pandas frequency) to average them onto a "
                     "regular grid", what, step, _alias(step))
        return g
    if (diffs == step).all():
        return g
    grid = pd.date_range(g.index[0], g.index[-1], freq=step, name=g.index.name)
    _log.warning("%s: %d missing time step(s) (gaps in the %s grid) added as missing values", what,
                 len(grid) - len(g), step)
    return g.reindex(grid)


def _alias(step: pd.Timedelta) -> str:
    secs = int(step.total_seconds())
    for unit, n in (("D", 86400), ("h", 3600), ("min", 60)):
        if secs % n == 0:
            return f"{secs // n}{unit}"
    return f"{secs}s"


def _table_files(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    if not isinstance(path, str | os.PathLike):
        return [Path(p) for p in path]
    p = Path(path)
    if p.is_dir():
        found = sorted(q for q in p.iterdir() if q.suffix.lower() in (".csv", ".parquet", ".txt", ".gz"))
        if not found:
            raise FileNotFoundError(f"{p}: no .csv / .parquet files in this folder")
        return found
    if any(ch in str(path) for ch in "*?["):
        found = sorted(Path(q) for q in glob.glob(str(path)))
        if not found:
            raise FileNotFoundError(f"no files match {path}")
        return found
    return [p]


def _read_one(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    if path.suffix.lower() in (".csv", ".txt", ".gz"):
        return pd.read_csv(path, low_memory=False)
    raise DataFormatError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")


def read_table(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    time_column: str | None = None,
    layout: Literal["wide", "long"] = "wide",
    columns: Sequence[str] | None = None,
    id_column: str | None = None,
    variable_column: str = "variable",
    value_column: str = "value",
    files: Literal["series", "join"] = "series",
    freq: str | None = "auto",
    categorical: Categorical = "drop",
) -> dict[str, pd.DataFrame]:
    """Read CSV or Parquet tables of timestamped multivariate series.

    Args:
        path: a ``.csv`` / ``.parquet`` file, a folder of them, a glob pattern (``"stations/*.csv"``) or a list.
        time_column: timestamp column (parsed and used as the sorted index); ``None`` keeps row order.
        layout: ``"wide"`` (one column per variable) or ``"long"`` (rows of ``time, variable, value``;
            values of the same time and variable are averaged).
        columns: variables to keep (default: every column other than the time/id columns).
        id_column: optional column naming separate series (e.g. a station or patient); each becomes its own
            series.
        variable_column: long layout: the variable-name column.
        value_column: long layout: the value column.
        files: several files: ``"series"`` keeps each file as its own series (named by the file stem),
            ``"join"`` joins them on time into one multivariate series with columns ``<stem>_<variable>``
            (needs ``time_column``).
        freq: ``"auto"`` adds the missing steps of a regular time grid as NaN rows (the step is the most common
            one; irregular timestamps are left as they are, with a message); a pandas frequency such as
            ``"1h"`` averages the rows of each bin and adds empty bins as NaN; ``None`` uses the rows as they are.
        categorical: non-numeric columns: ``"drop"`` (with a message), ``"encode"`` (integer codes) or
            ``"error"``. Number columns with a few stray tokens (a blank) are read as numbers, those
            values as NaN, with a count.

    Returns:
        ``{series id: DataFrame (T, F)}`` of float64 with NaN = missing (``"0"`` for one file without ids);
        all series share the same columns.

    Raises:
        ValueError: unknown columns, non-numeric variables (``categorical="error"``), infinities, duplicate
            timestamps, or files with different columns (each names the file).
    """
    paths = _table_files(path)
    if files == "join" and time_column is None and len(paths) > 1:
        raise DataFormatError("files='join' aligns the files on time: pass time_column=")
    out: dict[str, pd.DataFrame] = {}
    joined: list[pd.DataFrame] = []
    for p in paths:
        parts = _read_series(p, time_column, layout, columns, id_column, variable_column, value_column,
                             freq, categorical)
        if files == "join" and len(paths) > 1:
            for key, g in parts.items():
                prefix = p.stem if key == "0" else f"{p.stem}_{key}"
                joined.append(g.add_prefix(f"{prefix}_"))
            continue
        for key, g in parts.items():
            name = key if len(paths) == 1 else (p.stem if key == "0" else f"{p.stem}/{key}")
            out[name] = g
    if joined:
        wide = pd.concat(joined, axis=1).sort_index()
        return {"0": _regularise(wide, freq, "the joined files")}
    first_name, first = next(iter(out.items()))
    for name, g in out.items():
        if list(g.columns) != list(first.columns):
            raise DataFormatError(f"series {name!r} has columns {list(g.columns)} but {first_name!r} has "
                             f"{list(first.columns)}; pass columns=[...] present in every file, or files='join'")
    return out


def _read_series(path: Path, time_column: str | None, layout: str, columns: Sequence[str] | None,
                 id_column: str | None, variable_column: str, value_column: str, freq: str | None,
                 categorical: Categorical) -> dict[str, pd.DataFrame]:
    df = _read_one(path)
    need = [c for c in (time_column, id_column) if c is not None]
    if layout == "long":
        need += [variable_column, value_column]
    unknown = [c for c in need if c not in df.columns]
    if unknown:
        raise DataFormatError(f"{path} has no column(s) {unknown}; its columns are {list(df.columns)}")
    if time_column is not None:
        try:
            df[time_column] = pd.to_datetime(df[time_column])
        except (ValueError, TypeError) as e:
            raise DataFormatError(f"{path}: column {time_column!r} is not a timestamp ({e}); pass the right "
                             "time_column, or none to use row order") from None
    if layout == "long":
        keys = [c for c in (id_column, time_column) if c is not None]
        if time_column is None:
            raise DataFormatError("the long layout needs time_column= to align the variables")
        df[value_column] = _coerce_numeric(df[[value_column]], str(path), "error")[value_column]
        df = df.pivot_table(index=keys, columns=variable_column, values=value_column, aggfunc="mean",
                            dropna=False)
        df.columns = [str(c) for c in df.columns]
        df = df.reset_index()
    groups = [("0", df)] if id_column is None else [(str(k), g) for k, g in df.groupby(id_column, sort=True)]
    out: dict[str, pd.DataFrame] = {}
    for key, g in groups:
        g = g.drop(columns=[id_column]) if id_column is not None else g
        what = str(path) if id_column is None else f"{path} [{id_column}={key}]"
        if time_column is not None:
            g = g.set_index(time_column).sort_index()
            if g.index.duplicated().any():
                raise DataFormatError(f"series {key!r} in {path} has duplicate timestamps; aggregate them first, or "
                                 "pass freq='1h' (a pandas frequency) to average the rows of each step")
        keep = list(columns) if columns is not None else list(g.columns)
        unknown = [c for c in keep if c not in g.columns]
        if unknown:
            raise DataFormatError(f"{path} has no column(s) {unknown}; its columns are {list(g.columns)}")
        g = _coerce_numeric(g[keep], what, categorical, explicit=list(columns or ()))
        if g.shape[1] == 0:
            raise DataFormatError(f"{path} has no numeric column to impute; pass columns=[...] or categorical='encode'")
        out[key] = to_numeric_frame(_regularise(g, freq, what), what)
    return out
