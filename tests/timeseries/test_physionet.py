from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from attnkit.timeseries.data import PhysioNet2012DataModule, load_physionet2012, read_physionet_record


def test_record_parser_averages_within_hour_and_skips_empty_names() -> None:
    rec = read_physionet_record("Time,Parameter,Value\n00:00,RecordID,1\n01:10,HR,80\n01:50,HR,90\n02:00,,3\n")
    assert rec["HR"] == {1: [80.0, 90.0]}
    assert "" not in rec
    with pytest.raises(ValueError, match="Time,Parameter,Value"):
        read_physionet_record("a,b,c\n")
    with pytest.raises(ValueError, match="line 2"):
        read_physionet_record("Time,Parameter,Value\nxx,HR,notanumber\n")


def test_processing_from_archives(physionet_root: Path, tmp_path: Path) -> None:
    d = load_physionet2012(physionet_root / "physionet2012", cache_dir=tmp_path / "cache")
    # 36 records, one static-only record per set dropped
    assert d.x.shape == (33, 48, 6)  # HR, Temp, GCS, Urine, pH + Weight (time-varying parameter kept)
    assert d.features == sorted(["GCS", "HR", "Temp", "Urine", "Weight", "pH"])
    assert set(d.labels.tolist()) <= {0, 1}
    # hour 0 weight is kept as recorded; nothing beyond hour 47
    assert np.nanmax(np.abs(d.x[:, 0, d.features.index("Weight")])) == 80
    # the cache is used the second time (same arrays)
    again = load_physionet2012(physionet_root / "physionet2012", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.x, d.x)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


def test_processing_says_where_it_caches(physionet_root: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    load_physionet2012(physionet_root / "physionet2012", cache_dir=tmp_path / "cache")
    err = capsys.readouterr().err
    (cached,) = (tmp_path / "cache").glob("*.npz")
    assert f"processing the PhysioNet-2012 records under {physionet_root / 'physionet2012'}" in err
    assert f"caching the arrays in {cached}" in err
    load_physionet2012(physionet_root / "physionet2012", cache_dir=tmp_path / "cache")
    assert "processing" not in capsys.readouterr().err  # read from the cache, silently
    load_physionet2012(physionet_root / "physionet2012", cache_dir=tmp_path / "other", progress=False)
    assert capsys.readouterr().err == ""


def test_hourly_mean_matches_raw_text(physionet_root: Path, tmp_path: Path) -> None:
    import tarfile

    d = load_physionet2012(physionet_root / "physionet2012", cache_dir=tmp_path / "cache")
    with tarfile.open(physionet_root / "physionet2012" / "set-b.tar.gz") as tar:
        m = [m for m in tar.getmembers() if m.isfile()][3]
        text = tar.extractfile(m).read().decode()  # type: ignore[union-attr]
    rid = int(Path(m.name).stem)
    rows = [line.split(",") for line in text.splitlines()[1:]]
    hr5 = [float(v) for t, p, v in rows if p == "HR" and int(t[:2]) == 5]
    got = d.x[list(d.record_ids).index(rid), 5, d.features.index("HR")]
    if hr5:
        assert got == pytest.approx(np.mean(hr5), rel=1e-5)
    else:
        assert np.isnan(got)


def test_datamodule_split_standardise_and_seeded_holdout(physionet_root: Path) -> None:
    dm = PhysioNet2012DataModule(root=str(physionet_root), batch_size=4, cache_dir=str(physionet_root / "c"))
    assert dm.num_features == 6 and dm.num_steps == 48
    dm.setup()
    n = {k: len(dm.dataset(k)) for k in ("train", "val", "test")}
    assert sum(n.values()) == 33 and n["test"] == 7 and n["val"] == 5
    tr = dm.dataset("train").values
    assert torch.nanmean(tr.reshape(-1, 6), 0).abs().max() < 1e-4  # standardised with training statistics
    te = dm.dataset("test")
    obs = ~torch.isnan(te.values)
    assert te.holdout.sum() == round(0.1 * obs.sum().item())
    assert not (te.holdout & ~obs).any()
    other = PhysioNet2012DataModule(root=str(physionet_root), cache_dir=str(physionet_root / "c"))
    other.setup()
    assert torch.equal(other.dataset("test").holdout, te.holdout)  # seeded


@pytest.mark.data
def test_real_physionet2012_shape(real_data_dir: Path) -> None:
    d = load_physionet2012(real_data_dir / "physionet2012")
    assert d.x.shape == (11988, 48, 37)
    assert 0.78 < np.isnan(d.x).mean() < 0.82
    assert "Age" not in d.features and "ICUType" not in d.features and "Weight" in d.features
