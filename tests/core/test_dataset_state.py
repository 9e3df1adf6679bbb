"""`attnkit datasets` states from what the loaders need; extracted archives; checksums of downloads."""

from __future__ import annotations

from pathlib import Path

import pytest

import attnkit.audio
import attnkit.recsys
import attnkit.timeseries
import attnkit.vision  # noqa: F401  (registers the datasets)
from attnkit.core.data import Dataset, RemoteFile, cache_dir, fetch, get_dataset, register, registered


def _touch(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_states_of_registered_files(tmp_path: Path) -> None:
    ds = register(Dataset(id="test-state", description="t", files=(
        RemoteFile("a.zip", "http://127.0.0.1:9/a.zip", extracted=("a/data.csv", "a/*.txt")),
        RemoteFile("b.txt", "http://127.0.0.1:9/b.txt"),
    )), replace=True)
    d = tmp_path / "test-state"
    assert ds.state(tmp_path) == "missing"
    _touch(d / "b.txt")
    assert ds.state(tmp_path) == "partial" and [f.path for f in ds.missing(tmp_path)] == ["a.zip"]
    _touch(d / "a" / "data.csv")
    assert ds.state(tmp_path) == "partial"  # one extracted pattern still unmatched
    _touch(d / "a" / "notes.txt")
    assert ds.state(tmp_path) == "present" and ds.missing(tmp_path) == []
    # fetch uses the extracted contents: nothing to download (the URL is unreachable)
    assert fetch("test-state", root=tmp_path, progress=False) == d


def test_dataset_without_files_is_never_present_by_default(tmp_path: Path) -> None:
    bare = register(Dataset(id="test-bare", description="t"), replace=True)
    assert bare.state(tmp_path) == "missing"
    _touch(tmp_path / "test-bare" / "anything.bin")
    assert bare.state(tmp_path) == "unchecked"
    speech = register(Dataset(id="test-speech", description="t", content=("**/*.wav",)), replace=True)
    (tmp_path / "test-speech").mkdir()
    assert speech.state(tmp_path) == "missing"
    _touch(tmp_path / "test-speech" / "README.txt")
    assert speech.state(tmp_path) == "missing"
    _touch(tmp_path / "test-speech" / "sub" / "one.wav")
    assert speech.state(tmp_path) == "present"


def test_clean_speech_on_an_empty_root_is_missing(tmp_path: Path) -> None:
    ds = get_dataset("clean-speech")
    assert ds.state(tmp_path) == "missing"
    _touch(tmp_path / "clean-speech" / "librispeech" / "x.flac")
    assert ds.state(tmp_path) == "present"


def test_extracted_timeseries_data_counts_as_present(tmp_path: Path) -> None:
    pn = get_dataset("physionet2012")
    for s in "abc":
        _touch(tmp_path / "physionet2012" / f"set-{s}" / "132539.txt", "Time,Parameter,Value\n")
    assert pn.state(tmp_path) == "partial"  # the Outcomes files are still missing
    for s in "abc":
        _touch(tmp_path / "physionet2012" / f"Outcomes-{s}.txt", "RecordID,In-hospital_death\n")
    assert pn.state(tmp_path) == "present"

    air = get_dataset("beijing-air-quality")
    from attnkit.timeseries.data.registry import AIR_QUALITY_STATIONS

    folder = tmp_path / "beijing-air-quality" / "PRSA_Data_20130301-20170228"
    for st in AIR_QUALITY_STATIONS[:-1]:
        _touch(folder / f"PRSA_Data_{st}_20130301-20170228.csv")
    assert air.state(tmp_path) == "missing"  # 11 of 12 stations: the loader would fail
    st = AIR_QUALITY_STATIONS[-1]
    _touch(tmp_path / "beijing-air-quality" / "x" / f"PRSA_Data_{st}_20130301-20170228.csv")
    assert air.state(tmp_path) == "present"


def test_movielens_extracted_member_counts_as_present(tmp_path: Path) -> None:
    ds = get_dataset("ml-1m")
    assert ds.state(tmp_path) == "missing"
    _touch(tmp_path / "ml-1m" / "ml-1m" / "ratings.dat", "1::1::5::978300760\n")
    assert ds.state(tmp_path) == "present"


# Files with a URL but no sha256, because no verified copy of the upstream bytes and no published checksum
# was available (docs/datasets.md, "Checksums"). A new download without a checksum fails this test.
NO_PUBLISHED_CHECKSUM = {
    ("physionet2012", f"{kind}-{s}{ext}") for s in "abc" for kind, ext in (("set", ".tar.gz"), ("Outcomes", ".txt"))
} | {
    ("beijing-air-quality", "beijing+multi+site+air+quality+data.zip"),
    ("nisqa-corpus", "NISQA_Corpus.zip"),
    ("mtat", "annotations_final.csv"),
    ("mtat", "mp3.zip.001"),
    ("mtat", "mp3.zip.002"),
    ("mtat", "mp3.zip.003"),
}


def test_every_download_has_a_checksum_or_is_a_documented_exception() -> None:
    unchecked = {(ds.id, f.path) for ds in registered() if not ds.id.startswith("test-")
                 for f in ds.files if f.url is not None and f.sha256 is None}
    assert unchecked == NO_PUBLISHED_CHECKSUM
    docs = (Path(__file__).parents[2] / "docs" / "datasets.md").read_text()
    for dataset_id in {d for d, _ in NO_PUBLISHED_CHECKSUM}:
        assert f"`{dataset_id}`" in docs.split("## Checksums", 1)[1]


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTNKIT_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir("nisqa-simulated") == tmp_path / "c" / "nisqa-simulated"
    monkeypatch.delenv("ATTNKIT_CACHE_DIR")
    assert cache_dir("x") == Path.home() / ".cache" / "attnkit" / "processed" / "x"
