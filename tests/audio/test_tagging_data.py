"""Tag readers (MTAT layout, CSV, folders), bad input, chunking and the data module."""

from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from attnkit.audio.tagging import MTAT_TOP50, MusicTaggingDataModule, TagFileError
from attnkit.audio.tagging.data import ChunkDataset, SongDataset, collate_songs, song_chunks
from attnkit.audio.tagging.formats import apply_vocabulary, read_collection, read_mtat, read_tag_csv
from attnkit.audio.tagging.synthetic import mtat_columns, write_mtat_layout, write_tone_collection

MTAT_CLIPS = [
    ("2", "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3", ["classical", "strings"]),
    ("14", "c/jacob_heringman-josquin_des_prez_lute_settings-19-gintzler__pater_noster-204-233.mp3", ["guitar"]),
    ("21", "0/american_baroque-dances_and_suites_of_rameau_and_couperin-25-le_petit_rien-30-59.mp3",
     ["harpsichord", "other tag 3"]),
    ("30", "b/some_artist-some_album-01-title-0-29.mp3", []),
    ("31", "d/some_artist-some_album-02-title-0-29.mp3", ["rock", "loud", "male vocal"]),
]


def test_mtat_reader_real_layout(tmp_path: Path) -> None:
    root = write_mtat_layout(tmp_path / "mtat", MTAT_CLIPS, audio=False)
    header = (root / "annotations_final.csv").read_text().splitlines()[0].split("\t")
    assert header[0] == '"clip_id"' and header[-1] == '"mp3_path"' and len(header) == 190
    clips = {c.clip_id: c for c in read_mtat(root)}
    assert clips["2"].split == "test" and clips["14"].split == "val" and clips["21"].split == "train"
    assert clips["30"].split == "train" and clips["31"].split == "test"
    assert set(clips["21"].tags) == {"harpsichord", "other tag 3"}
    assert clips["2"].path == root / MTAT_CLIPS[0][1]
    # top-50 protocol: tags outside the 50 are dropped, clips without any of them kept as negatives
    with pytest.warns(UserWarning, match="1 of 5 clips have no tag"):
        top = {c.clip_id: c for c in apply_vocabulary(list(clips.values()), MTAT_TOP50, empty="keep")}
    assert top["21"].tags == ("harpsichord",) and top["30"].tags == ()


def test_mtat_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(TagFileError, match=r"annotations_final\.csv"):
        read_mtat(tmp_path)
    (tmp_path / "annotations_final.csv").write_text("clip_id,guitar,mp3_path\n1,0,0/a.mp3\n")
    with pytest.raises(TagFileError, match="comma-separated"):
        read_mtat(tmp_path)
    cols = mtat_columns()
    (tmp_path / "annotations_final.csv").write_text(
        "\t".join(["clip_id", *cols, "mp3_path"]) + "\n" + "\t".join(["1", "2"] + ["0"] * 187 + ["0/a.mp3"]) + "\n"
    )
    with pytest.raises(TagFileError, match="expected 0 or 1"):
        read_mtat(tmp_path)


def test_real_mtat_annotations_match_reader(real_data_dir: Path, tmp_path: Path) -> None:
    """The shipped top-50 list is the benchmark's, and the folder split reproduces musicnn's val/test sets."""
    ann = real_data_dir / "mtat-annotations"
    lee = ann.joinpath("lee_top50_tags.txt").read_text().split()
    assert [re.sub(r"([A-Z])", r" \1", t).lower() for t in lee] == list(MTAT_TOP50)
    index = dict(row for row in csv.reader(ann.joinpath("musicnn_index_mtt.tsv").open(), delimiter="\t"))
    fixture, truth = [], {}
    for split in ("val", "test"):
        rows = list(csv.reader(ann.joinpath(f"musicnn_{split}_gt_mtt.tsv").open(), delimiter="\t"))[:40]
        for clip_id, vec in rows:
            tags = [t for t, v in zip(MTAT_TOP50, json.loads(vec), strict=True) if v == 1.0]
            fixture.append((clip_id, index[clip_id], tags))
            truth[clip_id] = (split, tuple(tags))
    clips = read_mtat(write_mtat_layout(tmp_path / "mtat", fixture, audio=False))
    kept = apply_vocabulary(clips, MTAT_TOP50, empty="keep") if clips else []
    assert {c.clip_id: (c.split, tuple(sorted(c.tags, key=MTAT_TOP50.index))) for c in kept} == truth


def test_csv_reader_and_bad_tag_files(tmp_path: Path) -> None:
    f = tmp_path / "tags.csv"
    f.write_text("path,tags,split\na.wav,piano; slow ;piano,train\nb.wav,,test\n")
    clips = read_tag_csv(f)
    assert clips[0].tags == ("piano", "slow") and clips[1].tags == () and clips[0].path == tmp_path / "a.wav"
    with pytest.raises(TagFileError, match="not in the vocabulary: 'slwo'"):
        apply_vocabulary([*clips, clips[0].__class__(tmp_path / "c.wav", ("slwo",), "train", "c.wav")],
                         ["piano", "slow"], unknown="error")
    with pytest.raises(TagFileError, match="no tag in the vocabulary"):
        apply_vocabulary(clips, ["piano", "slow"], empty="error")
    with pytest.warns(UserWarning, match="dropped"):
        assert len(apply_vocabulary(clips, ["piano", "slow"], empty="drop")) == 1
    f.write_text("file,labels\na.wav,x\n")
    with pytest.raises(TagFileError, match="needs columns 'path' and 'tags'"):
        read_tag_csv(f)
    f.write_text("path,tags,split\na.wav,x,training\n")
    with pytest.raises(TagFileError, match="split 'training'"):
        read_tag_csv(f)
    f.write_text("path,tags\na.wav,x\na.wav,y\n")
    with pytest.raises(TagFileError, match="listed twice"):
        read_tag_csv(f)


def test_folder_reader(tmp_path: Path) -> None:
    for tag in ("piano", "violin"):
        (tmp_path / tag).mkdir()
        for i in range(3):
            sf.write(tmp_path / tag / f"{i}.wav", np.zeros(800, dtype=np.float32), 8000)
    clips = read_collection(tmp_path)
    assert len(clips) == 6 and {c.tags for c in clips} == {("piano",), ("violin",)}
    with pytest.raises(TagFileError, match="per-tag sub-folders"):
        read_collection(tmp_path / "piano")


def test_song_chunks_cover_and_pad() -> None:
    x = torch.arange(25.0)
    c = song_chunks(x, 10)
    assert c.shape == (3, 10) and c[0, 0] == 0 and c[-1, -1] == 24
    short = song_chunks(torch.ones(4), 10)
    assert short.shape == (1, 10) and short[0, 4:].abs().sum() == 0


def test_datamodule_bad_audio_short_clips_and_loaders(tmp_path: Path) -> None:
    root = write_tone_collection(tmp_path / "tagging-scores", (8, 4, 4), seconds=1.0)
    (root / "audio" / "train_000.wav").write_bytes(b"not audio at all")
    (root / "audio" / "train_001.wav").unlink()
    dm = MusicTaggingDataModule("tagging-scores", root=str(tmp_path), chunk_seconds=1.5, batch_size=4)
    assert dm.tag_names == ["high", "low", "noisy", "pulse"]  # by training frequency, ties by name
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        dm.setup("fit")
    text = " | ".join(str(x.message) for x in w)
    assert "2 of 8 audio files are missing or unreadable" in text and "train_000.wav" in text
    assert "shorter than the 1.5 s chunk and are padded" in text
    assert len(dm.splits["train"]) == 6
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 24000) and y.shape == (4, 4)
    b = next(iter(dm.val_dataloader()))
    assert b["chunks"].shape[1] == 24000 and b["targets"].shape == (4, 4) and b["song"].max() == 3


def test_datamodule_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(TagFileError, match=r"python -m attnkit.audio.tagging.scores"):
        _ = MusicTaggingDataModule("tagging-scores", root=str(tmp_path)).tag_names
    with pytest.raises(TagFileError, match="neither a path nor a registered dataset"):
        _ = MusicTaggingDataModule("no-such-dataset", root=str(tmp_path)).tag_names
    root = write_tone_collection(tmp_path / "c", (4, 2, 2), seconds=0.5)
    with pytest.raises(TagFileError, match="not in the vocabulary"):
        _ = MusicTaggingDataModule(str(root), tags=["low", "high"]).tag_names
    assert MusicTaggingDataModule(str(root), tags=["low", "high"], unknown_tags="ignore").num_tags == 2


def test_mtat_datamodule_reads_mp3_layout(tmp_path: Path) -> None:
    clips = [(str(i), f"{'0c' [i % 2] if i < 6 else 'd'}/artist-album-{i:02d}-title-0-29.mp3",
              ["classical", "slow"] if i % 2 else ["techno", "fast"]) for i in range(9)]
    write_mtat_layout(tmp_path / "mtat", clips)
    dm = MusicTaggingDataModule("mtat", root=str(tmp_path), chunk_seconds=1.0, eval_batch_size=2)
    assert dm.tag_names == list(MTAT_TOP50)
    dm.setup("fit")
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [3, 3, 3]
    ds = ChunkDataset(dm.splits["train"], dm.tag_names, 16000, 16000)
    x, y = ds[0]
    assert x.shape == (16000,) and y[MTAT_TOP50.index("techno")] == 1 and float(x.abs().max()) > 0.1
    b = collate_songs([SongDataset(dm.splits["test"], dm.tag_names, 16000, 16000)[i] for i in range(2)])
    assert b["targets"].shape == (2, 50)
