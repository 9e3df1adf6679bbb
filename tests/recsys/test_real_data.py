"""The real files (ATTNKIT_DATA_DIR) read with the statistics the MANIFEST states."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnkit.recsys import SequentialDataModule, read_sasrec_txt, read_user_sequences

pytestmark = pytest.mark.data


def test_sasrec_games_statistics_and_split(real_data_dir: Path) -> None:
    d = read_sasrec_txt(real_data_dir / "sasrec-games" / "Video.txt")
    assert (d.num_interactions, d.num_users, d.num_items) == (287_107, 31_013, 23_715)
    dm = SequentialDataModule("sasrec-games", root=str(real_data_dir), eval_users=10_000)
    dm.setup()
    assert len(dm.val_dataloader().dataset) == 10_000  # the authors' 10,000-user subsample
    b = next(iter(dm.test_dataloader()))
    assert b["candidates"].shape == (512, 101)


def test_s3rec_beauty_statistics(real_data_dir: Path) -> None:
    d = read_user_sequences(real_data_dir / "s3rec-beauty" / "Beauty.txt")
    assert (d.num_interactions, d.num_users, d.num_items) == (198_502, 22_363, 12_101)
