"""Readers for the formats users have: UCI PRSA air-quality CSVs, ETT CSVs, any CSV/Parquet table."""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from attnkit.core.errors import DataFormatError, DataNotFoundError

__all__ = ["PRSA_COLUMNS", "PRSA_NUMERIC", "read_ett", "read_prsa", "read_table", "to_numeric_frame"]

PRSA_COLUMNS = ("No", "year", "month", "day", "hour", "PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP",
                "PRES", "DEWP", "RAIN", "wd", "WSPM", "station")
#: The 11 numeric variables the SAITS paper uses per station (12 stations -> 132 features).
PRSA_NUMERIC = ("PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP", "PRES", "DEWP", "RAIN", "WSPM")
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
        df = pd.read_csv(io.BytesIO(s) if isinstance(s, bytes) else s)
        missing = [c for c in PRSA_COLUMNS if c not in df.columns]
        if missing:
            raise DataFormatError(f"{name} is not a PRSA station file: columns {missing} are missing "
                             f"(expected header {','.join(PRSA_COLUMNS)})")
        bad = [v for v in variables if v not in PRSA_NUMERIC]
        if bad:
            raise ValueError(f"variables {bad} are not numeric PRSA columns; choose from {list(PRSA_NUMERIC)}")
        station = _PRSA_NAME.search(name)
        st = station.group("station") if station else str(df["station"].iloc[0])
        t = pd.to_datetime(df[["year", "month", "day", "hour"]])
        part = df[list(variables)].apply(pd.to_numeric, errors="coerce")
        part.index = pd.DatetimeIndex(t, name="datetime")
        part.columns = [f"{st}_{v}" for v in variables]
        frames.append(part[~part.index.duplicated()])
    wide = pd.concat(frames, axis=1).sort_index()
    return wide[sorted(wide.columns, key=lambda c: (c.rsplit("_", 1)[0], variables.index(c.rsplit("_", 1)[1])))]


def read_ett(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read an ETT CSV (``date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT``) indexed by ``date``."""
    df = pd.read_csv(path)
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
        raise ValueError(
            f"{what} has non-numeric columns {bad}; pass columns=[...] with the numeric variables to impute, or "
            "time_column=... if one of them is the timestamp"
        )
    out = df.astype(np.float64)
    inf = [c for c in out.columns if np.isinf(out[c].to_numpy()).any()]
    if inf:
        raise ValueError(f"{what} has infinite values in columns {inf}; replace them with NaN to impute them")
    return out


def read_table(
    path: str | os.PathLike[str],
    *,
    time_column: str | None = None,
    layout: Literal["wide", "long"] = "wide",
    columns: Sequence[str] | None = None,
    id_column: str | None = None,
    variable_column: str = "variable",
    value_column: str = "value",
) -> dict[str, pd.DataFrame]:
    """Read a CSV or Parquet table of timestamped multivariate series.

    Args:
        path: ``.csv`` or ``.parquet`` file.
        time_column: timestamp column (parsed and used as the sorted index); ``None`` keeps row order.
        layout: ``"wide"`` (one column per variable) or ``"long"`` (rows of ``time, variable, value``).
        columns: variables to keep (default: every column other than the time/id columns).
        id_column: optional column naming separate series (e.g. a station or patient); each becomes its own
            series.
        variable_column: long layout: the variable-name column.
        value_column: long layout: the value column.

    Returns:
        ``{series id: DataFrame (T, F)}`` of float64 with NaN = missing (one entry ``"0"`` without ids); all
        series share the same columns.

    Raises:
        ValueError: unknown columns, non-numeric variables, infinities or duplicate timestamps.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    elif path.suffix in (".csv", ".txt", ".gz"):
        df = pd.read_csv(path)
    else:
        raise DataFormatError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    need = [c for c in (time_column, id_column) if c is not None]
    if layout == "long":
        need += [variable_column, value_column]
    unknown = [c for c in need if c not in df.columns]
    if unknown:
        raise DataFormatError(f"{path} has no column(s) {unknown}; its columns are {list(df.columns)}")
    if time_column is not None:
        df[time_column] = pd.to_datetime(df[time_column])
    if layout == "long":
        keys = [c for c in (id_column, time_column) if c is not None]
        if time_column is None:
            raise ValueError("the long layout needs time_column= to align the variables")
        df = df.pivot_table(index=keys, columns=variable_column, values=value_column, aggfunc="mean")
        df.columns = [str(c) for c in df.columns]
        df = df.reset_index()
    groups = [("0", df)] if id_column is None else [(str(k), g) for k, g in df.groupby(id_column, sort=True)]
    out: dict[str, pd.DataFrame] = {}
    for key, g in groups:
        g = g.drop(columns=[id_column]) if id_column is not None else g
        if time_column is not None:
            g = g.set_index(time_column).sort_index()
            if g.index.duplicated().any():
                raise ValueError(f"series {key!r} in {path} has duplicate timestamps; aggregate them first")
        keep = list(columns) if columns is not None else list(g.columns)
        unknown = [c for c in keep if c not in g.columns]
        if unknown:
            raise DataFormatError(f"{path} has no column(s) {unknown}; its columns are {list(g.columns)}")
        out[key] = to_numeric_frame(g[keep], str(path))
    return out
