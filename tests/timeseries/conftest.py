"""Tiny fixture data in the real formats (PhysioNet-2012 archives, UCI PRSA CSVs, ETT CSV)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PN_PARAMS = ["HR", "Temp", "GCS", "Urine", "pH"]
PRSA_HEADER = ("No,year,month,day,hour,PM2.5,PM10,SO2,NO2,CO,O3,TEMP,PRES,DEWP,RAIN,wd,WSPM,station")


def _record(rid: int, rng: np.random.Generator, static_only: bool = False) -> str:
    lines = ["Time,Parameter,Value", f"00:00,RecordID,{rid}", "00:00,Age,54", "00:00,Gender,0",
             "00:00,Height,-1", "00:00,ICUType,4", "00:00,Weight,80"]
    if not static_only:
        for h in range(0, 49, 1):
            for p in PN_PARAMS:
                if rng.random() < 0.5:
                    for m in sorted(rng.choice(60, size=rng.integers(1, 3), replace=False)):
                        lines.append(f"{h:02d}:{m:02d},{p},{rng.normal(50, 10):.2f}")
    return "\n".join(lines) + "\n"


def make_physionet(root: Path, per_set: int = 12, seed: int = 0) -> Path:
    """``root/physionet2012`` with set-{a,b,c}.tar.gz and Outcomes files; one static-only record per set."""
    rng = np.random.default_rng(seed)
    d = root / "physionet2012"
    d.mkdir(parents=True, exist_ok=True)
    rid = 132539
    for s in "abc":
        outcomes = ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"]
        with tarfile.open(d / f"set-{s}.tar.gz", "w:gz") as tar:
            for i in range(per_set):
                text = _record(rid, rng, static_only=(i == 0)).encode()
                info = tarfile.TarInfo(f"set-{s}/{rid}.txt")
                info.size = len(text)
                tar.addfile(info, io.BytesIO(text))
                outcomes.append(f"{rid},6,1,5,-1,{int(rng.random() < 0.2)}")
                rid += 1
        (d / f"Outcomes-{s}.txt").write_text("\n".join(outcomes) + "\n")
    return root


def make_prsa(folder: Path, stations: tuple[str, ...] = ("Aotizhongxin", "Changping"),
              start: str = "2013-03-01", end: str = "2015-02-28 23:00", seed: int = 0) -> Path:
    """UCI PRSA station files in exactly the published format (NA for missing, wind direction text)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    t = pd.date_range(start, end, freq="h")
    n = len(t)
    for st in stations:
        num = {c: rng.normal(50, 20, n).round(1) for c in
               ("PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP", "PRES", "DEWP", "RAIN", "WSPM")}
        df = pd.DataFrame({"No": np.arange(1, n + 1), "year": t.year, "month": t.month, "day": t.day,
                           "hour": t.hour, **num})
        for c in num:
            df.loc[rng.random(n) < 0.05, c] = np.nan
        df.insert(15, "wd", rng.choice(["N", "NNE", "E", "SW"], n))
        df["station"] = st
        df = df[PRSA_HEADER.split(",")]
        df.to_csv(folder / f"PRSA_Data_{st}_20130301-20170228.csv", index=False, na_rep="NA")
    return folder


def make_ett(folder: Path, n: int = 400, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    t = pd.date_range("2016-07-01", periods=n, freq="h")
    base = np.sin(np.arange(n) / 12.0)[:, None] + rng.normal(0, 0.1, (n, 7))
    df = pd.DataFrame(base, columns=["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"])
    df.insert(0, "date", t.strftime("%Y-%m-%d %H:%M:%S"))
    df.to_csv(folder / "ETTh1.csv", index=False)
    return folder


@pytest.fixture
def physionet_root(tmp_path: Path) -> Path:
    return make_physionet(tmp_path / "data")


@pytest.fixture
def prsa_root(tmp_path: Path) -> Path:
    make_prsa(tmp_path / "data" / "beijing-air-quality" / "PRSA_Data_20130301-20170228")
    return tmp_path / "data"


@pytest.fixture
def ett_root(tmp_path: Path) -> Path:
    make_ett(tmp_path / "data" / "ett")
    return tmp_path / "data"
