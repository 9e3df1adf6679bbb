"""Data modules over long tables: Beijing Air-Quality, ETT, and any CSV/Parquet file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from attnkit.core.data import dataset_dir, fetch
from attnkit.core.errors import ConfigError
from attnkit.timeseries.data.base import ImputationDataModule, SeriesSplits
from attnkit.timeseries.data.formats import Categorical, read_ett, read_prsa, read_table
from attnkit.timeseries.masking import MissingPattern

__all__ = ["AirQualityDataModule", "ETTDataModule", "TableDataModule"]


def _by_fraction(frames: dict[str, pd.DataFrame], fractions: tuple[float, float, float],
                 features: list[str]) -> SeriesSplits:
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) <= 0:
        raise ValueError(f"split fractions must be three positive numbers summing to 1, got {fractions}")
    tr, va, te, names, index = [], [], [], [], []
    for key, df in frames.items():
        a = df[features].to_numpy(np.float64)
        n = len(a)
        i, j = round(fractions[0] * n), round((fractions[0] + fractions[1]) * n)
        tr.append(a[:i])
        va.append(a[i:j])
        te.append(a[j:])
        names.append(key)
        index.append(df.index if df.index.name else pd.RangeIndex(n, name="step"))
    whole = [df[features].to_numpy(np.float64) for df in frames.values()]
    return SeriesSplits(tr, va, te, features, predict=whole, index=index, series_names=names)


class TableDataModule(ImputationDataModule):
    """Any CSV/Parquet table of timestamped multivariate series, split by time.

    Args:
        path: the ``.csv`` / ``.parquet`` file, a folder of them, a glob pattern or a list of files.
        time_column: timestamp column (``None``: row order).
        layout: ``"wide"`` or ``"long"`` (``time, variable, value`` rows).
        columns: variables to impute (default: all numeric columns other than time/id).
        id_column: column naming separate series (each is split by time on its own).
        variable_column: long layout: variable-name column.
        value_column: long layout: value column.
        files: several files: ``"series"`` (each its own series) or ``"join"`` (one multivariate series,
            columns ``<file stem>_<variable>``, aligned on time).
        freq: ``"auto"`` (missing steps of a regular grid become NaN rows), a pandas frequency such as
            ``"1h"`` (rows averaged per bin, empty bins NaN) or ``None`` (rows as they are).
        categorical: non-numeric columns: ``"drop"`` (default, with a message), ``"encode"`` or ``"error"``.
        split: train/val/test fractions along time.
        num_steps: window length.
        stride: step between training windows.
        batch_size: windows per batch.
        holdout_rate: held-out fraction of observed validation/test values.
        holdout_pattern: ``"mcar"``, ``"block"`` or ``"subseq"``.
        seed: seed of the hold-out masks.
        root: unused (the path is explicit); accepted so every data module takes ``root``.

    ``attnkit predict`` imputes the whole table and writes it back with the original timestamps.
    """

    protocol_name = "table"

    def __init__(self, path: str | list[str] = "", time_column: str | None = None,
                 layout: Literal["wide", "long"] = "wide", columns: list[str] | None = None,
                 id_column: str | None = None, variable_column: str = "variable", value_column: str = "value",
                 files: Literal["series", "join"] = "series", freq: str | None = "auto",
                 categorical: Categorical = "drop", split: tuple[float, float, float] = (0.7, 0.1, 0.2),
                 num_steps: int = 24, stride: int | None = None, batch_size: int = 128, holdout_rate: float = 0.1,
                 holdout_pattern: MissingPattern = "mcar", seed: int = 2023, root: str | None = None) -> None:
        super().__init__(root=root, num_steps=num_steps, stride=stride, batch_size=batch_size,
                         holdout_rate=holdout_rate, holdout_pattern=holdout_pattern, seed=seed)
        if not path:
            raise ConfigError("TableDataModule needs a table: set --data.path (path: in the config) to a .csv or "
                              ".parquet file")
        self.path = path
        self.read_args = {"time_column": time_column, "layout": layout, "columns": columns, "id_column": id_column,
                          "variable_column": variable_column, "value_column": value_column, "files": files,
                          "freq": freq, "categorical": categorical}
        self.split = tuple(split)

    def load_splits(self) -> SeriesSplits:  # noqa: D102
        frames = read_table(self.path, **self.read_args)  # type: ignore[arg-type]
        features = list(next(iter(frames.values())).columns)
        splits = _by_fraction(frames, self.split, features)  # type: ignore[arg-type]
        self._check(splits)  # content errors (unobserved features, infinities) first
        for name, part in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
            for key, a in zip(frames, part, strict=True):
                if len(a) < self.window:
                    where = f"series {key!r} of {self.path}" if len(frames) > 1 else str(self.path)
                    raise ValueError(
                        f"{where}: its {name} part has {len(a)} steps (of {len(frames[key])}), shorter than the "
                        f"window of {self.window}; use a smaller num_steps, other split fractions "
                        f"(now {list(self.split)}), or drop series this short"
                    )
        return splits


class ETTDataModule(ImputationDataModule):
    """ETT (ETTh1, ETTh2, ETTm1): 7 variables, split 12/4/4 months along time (Informer's protocol).

    Args:
        root: data root (``None``: ``ATTNKIT_DATA_DIR`` / registry); reads ``<root>/ett/<name>.csv``.
        name: ``"ETTh1"``, ``"ETTh2"`` or ``"ETTm1"``.
        num_steps: window length.
        stride: step between training windows.
        batch_size: windows per batch.
        holdout_rate: held-out fraction of observed validation/test values.
        holdout_pattern: ``"mcar"``, ``"block"`` or ``"subseq"``.
        seed: seed of the hold-out masks.
    """

    dataset_id = "ett"

    def __init__(self, root: str | None = None, name: Literal["ETTh1", "ETTh2", "ETTm1"] = "ETTh1",
                 num_steps: int = 24, stride: int | None = None, batch_size: int = 128, holdout_rate: float = 0.1,
                 holdout_pattern: MissingPattern = "mcar", seed: int = 2023) -> None:
        super().__init__(root=root, num_steps=num_steps, stride=stride, batch_size=batch_size,
                         holdout_rate=holdout_rate, holdout_pattern=holdout_pattern, seed=seed)
        if name not in ("ETTh1", "ETTh2", "ETTm1"):
            raise ValueError(f"unknown ETT file {name!r}; choose ETTh1, ETTh2 or ETTm1")
        self.name = name
        self.protocol_name = f"{name}: 12/4/4 months train/val/test along time"

    def load_splits(self) -> SeriesSplits:  # noqa: D102
        path = dataset_dir(self.dataset_id, self.root) / f"{self.name}.csv"
        if not path.is_file():
            if self.name == "ETTm1":
                from attnkit.core.data import DatasetUnavailableError, download
                from attnkit.timeseries.data.registry import ETTM1

                assert ETTM1.url is not None
                try:
                    download(ETTM1.url, path)
                except DatasetUnavailableError as e:
                    raise DatasetUnavailableError(f"dataset 'ett': {e}") from None
            else:
                fetch(self.dataset_id, root=self.root, files=[f"{self.name}.csv"])
        df = read_ett(path)
        per_month = 30 * 24 * (4 if self.name == "ETTm1" else 1)
        a = df.to_numpy(np.float64)
        i, j, k = 12 * per_month, 16 * per_month, 20 * per_month
        if len(a) < k:  # short files (fixtures, custom exports): fall back to 60/20/20
            i, j, k = round(0.6 * len(a)), round(0.8 * len(a)), len(a)
        return SeriesSplits([a[:i]], [a[i:j]], [a[j:k]], list(df.columns), predict=[a],
                            index=[df.index], series_names=[str(self.name)])


class AirQualityDataModule(ImputationDataModule):
    """Beijing Multi-Site Air-Quality as in SAITS: 12 stations x 11 variables = 132 features, 24-hour windows.

    Split along time: test 2013-03 to 2013-12, validation 2014-01 to 2014-10, training the rest
    (2014-11 to 2017-02).

    Args:
        root: data root; reads ``<root>/beijing-air-quality/`` (the station CSVs, extracted anywhere below
            it, or the UCI zip).
        num_steps: window length (the paper: 24).
        stride: step between training windows (default: non-overlapping).
        batch_size: windows per batch (the paper: 128).
        holdout_rate: held-out fraction of observed validation/test values (the paper: 0.1).
        holdout_pattern: ``"mcar"``, ``"block"`` or ``"subseq"``.
        seed: seed of the hold-out masks.
    """

    dataset_id = "beijing-air-quality"
    protocol_name = "Beijing Air-Quality (SAITS): test 2013-03..2013-12, val 2014-01..2014-10, train the rest"

    def __init__(self, root: str | None = None, num_steps: int = 24, stride: int | None = None,
                 batch_size: int = 128, holdout_rate: float = 0.1, holdout_pattern: MissingPattern = "mcar",
                 seed: int = 2023) -> None:
        super().__init__(root=root, num_steps=num_steps, stride=stride, batch_size=batch_size,
                         holdout_rate=holdout_rate, holdout_pattern=holdout_pattern, seed=seed)

    def data_root(self) -> Path:  # noqa: D102
        d = dataset_dir(self.dataset_id, self.root)
        if d.is_dir() and any(d.rglob("PRSA_Data_*.csv")):
            return d
        return super().data_root()

    def load_splits(self) -> SeriesSplits:  # noqa: D102
        df = read_prsa(self.data_root())
        t = df.index
        test = df[(t >= "2013-03-01") & (t < "2014-01-01")]
        val = df[(t >= "2014-01-01") & (t < "2014-11-01")]
        train = df[t >= "2014-11-01"]
        feats = list(df.columns)
        return SeriesSplits([train.to_numpy(np.float64)], [val.to_numpy(np.float64)], [test.to_numpy(np.float64)],
                            feats, predict=[df.to_numpy(np.float64)], index=[df.index], series_names=["beijing"])
