from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from attnkit.core.cli import resolve_config
from attnkit.timeseries.data import (
    AirQualityDataModule,
    ETTDataModule,
    ImputationDataModule,
    SeriesSplits,
    TableDataModule,
    make_windows,
    read_prsa,
    read_table,
)


def test_prsa_reader_wide_table(prsa_root: Path) -> None:
    df = read_prsa(prsa_root / "beijing-air-quality")
    assert df.shape[1] == 2 * 11 and df.index.is_monotonic_increasing
    assert list(df.columns[:3]) == ["Aotizhongxin_PM2.5", "Aotizhongxin_PM10", "Aotizhongxin_SO2"]
    assert df.index[0] == pd.Timestamp("2013-03-01 00:00")
    raw = pd.read_csv(next((prsa_root / "beijing-air-quality").rglob("PRSA_Data_Changping_*.csv")))
    np.testing.assert_array_equal(df["Changping_TEMP"].to_numpy(), raw["TEMP"].to_numpy())


def test_prsa_reader_zip_and_bad_header(prsa_root: Path, tmp_path: Path) -> None:
    import shutil

    folder = next((prsa_root / "beijing-air-quality").iterdir())
    archive = shutil.make_archive(str(tmp_path / "inner"), "zip", folder.parent, folder.name)
    import zipfile

    with zipfile.ZipFile(tmp_path / "uci.zip", "w") as z:  # UCI nests the station zip in another zip
        z.write(archive, "PRSA2017_Data_20130301-20170228.zip")
    assert read_prsa(tmp_path / "uci.zip").shape[1] == 22
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "PRSA_Data_Dongsi_20130301-20170228.csv").write_text("No,year,month\n1,2013,3\n")
    with pytest.raises(ValueError, match="not a PRSA station file"):
        read_prsa(bad)
    with pytest.raises(FileNotFoundError, match="PRSA_Data"):
        read_prsa(tmp_path / "empty_dir_that_is_missing")


def test_air_quality_split_by_date(prsa_root: Path) -> None:
    dm = AirQualityDataModule(root=str(prsa_root), batch_size=16)
    assert dm.num_features == 22 and dm.num_steps == 24
    s = dm.splits
    assert s.test[0].shape[0] == (pd.Timestamp("2014-01-01") - pd.Timestamp("2013-03-01")).days * 24
    assert s.val[0].shape[0] == (pd.Timestamp("2014-11-01") - pd.Timestamp("2014-01-01")).days * 24
    dm.setup()
    assert dm.dataset("train").values.shape[1:] == (24, 22)


def test_real_air_quality_matches_the_saits_protocol(real_data_dir: Path) -> None:
    if not (real_data_dir / "beijing-air-quality").is_dir():
        pytest.skip(f"{real_data_dir}/beijing-air-quality is absent (placed in ../shared/data in the seventh session)")
    dm = AirQualityDataModule(root=str(real_data_dir))
    dm.setup()
    parts = {s: dm.dataset(s) for s in ("train", "val", "test")}
    # SAITS (Du et al. 2023, Sec. 4.1): 132 features, 1,461 day-long windows, 1.6% originally missing
    assert dm.num_features == 132
    assert {s: len(d) for s, d in parts.items()} == {"train": 851, "val": 304, "test": 306}
    values = torch.cat([d.values for d in parts.values()])
    assert values.shape[1:] == (24, 132)
    assert 0.015 < torch.isnan(values).float().mean().item() < 0.017
    for s in ("val", "test"):  # 10% of the observed values held out, never a missing one
        observed = ~torch.isnan(parts[s].values)
        assert parts[s].holdout.sum().item() == pytest.approx(0.1 * observed.sum().item(), abs=1)
        assert not (parts[s].holdout & ~observed).any()
    # saits-air-quality-fast warms up for exactly one epoch of these windows at its batch size
    cfg = yaml.safe_load(resolve_config("saits-air-quality-fast").read_text())
    batch = cfg["data"]["init_args"]["batch_size"]
    assert cfg["model"]["init_args"]["scheduler"]["init_args"]["warmup_steps"] == -(-len(parts["train"]) // batch)


def test_ett_module(ett_root: Path) -> None:
    dm = ETTDataModule(root=str(ett_root), num_steps=16, batch_size=8)
    assert dm.num_features == 7
    dm.setup()
    assert dm.dataset("test").holdout.any()


def test_generic_table_wide_long_parquet(tmp_path: Path) -> None:
    t = pd.date_range("2021-01-01", periods=60, freq="D")
    rng = np.random.default_rng(0)
    wide = pd.DataFrame({"time": t, "a": rng.normal(size=60), "b": rng.normal(size=60), "site": "x"})
    wide.loc[3, "a"] = np.nan
    wide.to_csv(tmp_path / "w.csv", index=False)
    wide.to_parquet(tmp_path / "w.parquet")
    long = wide.melt(id_vars=["time", "site"], value_vars=["a", "b"]).dropna()
    long.to_csv(tmp_path / "l.csv", index=False)
    a = read_table(tmp_path / "w.csv", time_column="time", columns=["a", "b"])["0"]
    b = read_table(tmp_path / "w.parquet", time_column="time", columns=["a", "b"])["0"]
    c = read_table(tmp_path / "l.csv", time_column="time", layout="long", id_column="site")["x"]
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c[["a", "b"]], check_names=False, check_freq=False)
    with pytest.raises(ValueError, match=r"non-numeric columns \['site'\]"):
        read_table(tmp_path / "w.csv", time_column="time", categorical="error")
    with pytest.raises(ValueError, match="no column"):
        read_table(tmp_path / "w.csv", time_column="when")
    dm = TableDataModule(path=str(tmp_path / "w.csv"), time_column="time", columns=["a", "b"], num_steps=5)
    dm.setup()
    assert len(dm.dataset("train")) == 42 // 5 + 1


def test_bad_tables(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1.0, np.inf, 2.0] * 10, "b": 1.0})
    df.to_csv(tmp_path / "inf.csv", index=False)
    with pytest.raises(ValueError, match=r"infinite values in columns \['a'\]"):
        read_table(tmp_path / "inf.csv")
    df = pd.DataFrame({"a": np.arange(30.0), "b": np.nan})
    df.to_csv(tmp_path / "nan.csv", index=False)
    dm = TableDataModule(path=str(tmp_path / "nan.csv"), num_steps=4)
    with pytest.raises(ValueError, match=r"features \['b'\] have no observed value"):
        dm.setup()
    dm = TableDataModule(path=str(tmp_path / "nan.csv"), columns=["a"], num_steps=8)
    with pytest.raises(ValueError, match="shorter than the window"):
        dm.setup()  # val split has 3 rows < 8
    with pytest.raises(ValueError, match="shorter than the window"):
        make_windows([np.zeros((3, 2))], 4, 4)


def test_windows_cover_series_end() -> None:
    w, origin = make_windows([np.arange(10.0).reshape(10, 1)], 4, 4)
    assert origin[:, 1].tolist() == [0, 4, 6]
    assert torch.equal(torch.from_numpy(w[-1, :, 0]), torch.tensor([6.0, 7, 8, 9]))


class _ArraysDataModule(ImputationDataModule):
    """Any reader's output goes through the same checks (PhysioNet, PRSA and ETT readers included)."""

    def __init__(self, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> None:
        super().__init__(num_steps=4)
        self._arrays = (train, val, test)

    def load_splits(self) -> SeriesSplits:
        train, val, test = self._arrays
        return SeriesSplits(train=[train], val=[val], test=[test], features=["a", "b"])


def test_data_module_checks_every_split() -> None:
    ok = np.random.default_rng(0).normal(size=(8, 2))
    bad = ok.copy()
    bad[3, 1] = -np.inf
    with pytest.raises(ValueError, match="the test split contains infinite values; replace them with NaN"):
        _ArraysDataModule(ok, ok, bad).setup()
    empty = ok.copy()
    empty[:, 0] = np.nan
    with pytest.raises(ValueError, match=r"features \['a'\] have no observed value in the training split"):
        _ArraysDataModule(empty, ok, ok).setup()
    with pytest.raises(ValueError, match="does not have 2 features"):
        _ArraysDataModule(ok, ok[:, :1], ok).setup()
    with pytest.raises(ValueError, match="series 0 has 3 steps, shorter than the window of 4"):
        _ArraysDataModule(ok, ok[:3], ok).setup()
