"""Bring your own data: several files, gaps, categorical and stray tokens, registry, short series, baselines."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch

from attnkit.core.data import get_dataset
from attnkit.timeseries import SAITS, ImputationTask, TableDataModule, baseline_imputations, impute_locf, read_table
from attnkit.timeseries.data import read_prsa
from attnkit.timeseries.data.registry import AIR_QUALITY_STATIONS

from .conftest import make_prsa


def _station(path: Path, seed: int, n: int = 48, drop: tuple[int, ...] = ()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"time": pd.date_range("2022-01-01", periods=n, freq="h"),
                       "pm": rng.normal(size=n).round(3), "temp": rng.normal(size=n).round(3)})
    df = df.drop(index=list(drop))
    df.to_csv(path, index=False)
    return df


def test_several_files_as_series_or_joined(tmp_path: Path) -> None:
    a = _station(tmp_path / "north.csv", 0)
    b = _station(tmp_path / "south.csv", 1)
    series = read_table(tmp_path, time_column="time")  # a folder: every file is its own series
    assert list(series) == ["north", "south"]
    np.testing.assert_array_equal(series["south"]["temp"].to_numpy(), b["temp"].to_numpy())
    joined = read_table([tmp_path / "north.csv", tmp_path / "south.csv"], time_column="time", files="join")["0"]
    assert list(joined.columns) == ["north_pm", "north_temp", "south_pm", "south_temp"]
    np.testing.assert_array_equal(joined["north_pm"].to_numpy(), a["pm"].to_numpy())
    dm = TableDataModule(path=str(tmp_path / "*.csv"), time_column="time", files="join", num_steps=4)
    assert dm.num_features == 4


def test_gaps_become_missing_steps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kept = _station(tmp_path / "gappy.csv", 0, drop=(5, 6, 20))
    with caplog.at_level(logging.WARNING):
        df = read_table(tmp_path / "gappy.csv", time_column="time")["0"]
    assert len(df) == 48 and df.iloc[[5, 6, 20]].isna().all().all()
    assert "3 missing time step(s)" in caplog.text
    pd.testing.assert_series_equal(df["pm"].dropna(), kept.set_index("time")["pm"], check_freq=False)
    raw = read_table(tmp_path / "gappy.csv", time_column="time", freq=None)["0"]
    assert len(raw) == 45
    per_2h = read_table(tmp_path / "gappy.csv", time_column="time", freq="2h")["0"]
    assert len(per_2h) == 24 and per_2h["pm"].iloc[0] == pytest.approx(kept["pm"].iloc[:2].mean())


def test_categorical_columns_dropped_encoded_or_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "wd": ["N", "S", None, "N"]}).to_csv(tmp_path / "c.csv", index=False)
    with caplog.at_level(logging.WARNING):
        assert list(read_table(tmp_path / "c.csv")["0"].columns) == ["x"]
    assert "non-numeric column(s) ['wd'] dropped" in caplog.text
    enc = read_table(tmp_path / "c.csv", categorical="encode")["0"]
    assert enc["wd"].tolist()[:2] == [0.0, 1.0] and np.isnan(enc["wd"].iloc[2])
    with pytest.raises(ValueError, match=r"c\.csv has non-numeric columns \['wd'\]"):
        read_table(tmp_path / "c.csv", categorical="error")
    with pytest.raises(ValueError, match="non-numeric columns"):  # asked for by name: never silently dropped
        read_table(tmp_path / "c.csv", columns=["x", "wd"])


def test_stray_blank_token_no_dtype_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = 300_000  # large enough for pandas' chunked type inference to see two types
    values = np.arange(n, dtype=np.float64).astype(str)
    values[n - 10] = " "
    p = tmp_path / "big.csv"
    p.write_text("v,w\n" + "".join(f"{v},1\n" for v in values))
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")
        df = read_table(p)["0"]
    assert np.isnan(df["v"].iloc[n - 10]) and df["v"].notna().sum() == n - 1
    assert "1 value(s) that are not numbers" in caplog.text


def test_prsa_stray_token_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = make_prsa(tmp_path / "aq", stations=("Dongsi",), end="2013-03-10")
    f = next(folder.glob("*.csv"))
    lines = f.read_text().splitlines()
    cells = lines[5].split(",")
    cells[11] = " "  # TEMP
    lines[5] = ",".join(cells)
    f.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        df = read_prsa(folder)
    assert np.isnan(df["Dongsi_TEMP"].iloc[4]) and "TEMP" in caplog.text and "1 value(s)" in caplog.text


def test_registry_counts_extracted_station_files(tmp_path: Path) -> None:
    ds = get_dataset("beijing-air-quality")
    assert ds.missing(tmp_path) == list(ds.files)
    make_prsa(tmp_path / "beijing-air-quality" / "PRSA_Data_20130301-20170228", stations=AIR_QUALITY_STATIONS[:11],
              end="2013-03-02")
    assert ds.missing(tmp_path) == list(ds.files)  # 11 of 12 stations: still missing
    make_prsa(tmp_path / "beijing-air-quality" / "PRSA_Data_20130301-20170228", stations=AIR_QUALITY_STATIONS[11:],
              end="2013-03-02")
    assert ds.missing(tmp_path) == []


def test_too_short_series_names_the_file(tmp_path: Path) -> None:
    _station(tmp_path / "long.csv", 0, n=100)
    _station(tmp_path / "tiny.csv", 1, n=20)
    dm = TableDataModule(path=str(tmp_path), time_column="time", num_steps=8)
    with pytest.raises(ValueError, match=r"series 'tiny' of .*: its val part has 2 steps \(of 20\).*num_steps"):
        dm.setup()


def test_locf_and_constant_baselines() -> None:
    nan = float("nan")
    x = torch.tensor([[[nan, 1.0], [2.0, nan], [nan, nan], [5.0, 3.0]]])  # (1, 4, 2)
    assert torch.equal(impute_locf(x)[0, :, 0], torch.tensor([2.0, 2.0, 2.0, 5.0]))
    assert torch.equal(impute_locf(x)[0, :, 1], torch.tensor([1.0, 1.0, 1.0, 3.0]))
    empty = torch.full((1, 3, 1), nan)
    out = baseline_imputations(empty, torch.tensor([0.7]))
    assert out["locf"].eq(0).all() and out["mean"].eq(0).all() and out["median"].eq(0.7).all()


def test_task_reports_baselines_on_the_same_holdout(tmp_path: Path) -> None:
    _station(tmp_path / "s.csv", 0, n=400)
    dm = TableDataModule(path=str(tmp_path / "s.csv"), time_column="time", num_steps=8, holdout_rate=0.2)
    dm.setup()
    model = SAITS(num_features=2, num_steps=8, num_layers=1, embed_dim=16, num_heads=2, head_dim=8,
                  value_head_dim=8, ffn_dim=16)
    model.set_scaler(torch.as_tensor(dm.mean), torch.as_tensor(dm.std))
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    res = trainer.test(ImputationTask(model, baselines=True), dm, verbose=False)[0]
    ds = dm.dataset("test")
    held_values = ds.values[ds.holdout]
    assert res["test/baseline_mean/mae"] == pytest.approx(float(held_values.abs().mean()), rel=1e-5)
    med = (np.nanmedian(np.concatenate(dm.splits.train), axis=0) - dm.mean) / dm.std
    idx = ds.holdout.nonzero()[:, 2]
    expect = (held_values - torch.as_tensor(med, dtype=torch.float32)[idx]).abs().mean()
    assert res["test/baseline_median/mae"] == pytest.approx(float(expect), rel=1e-5)
    assert {"test/baseline_locf/rmse", "test/baseline_locf/mae_orig", "test/mae"} <= set(res)
