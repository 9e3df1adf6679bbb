from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from attnkit.recsys import read_interactions_table, read_movielens, read_sasrec_txt, read_user_sequences


def test_sasrec_txt_groups_users_in_file_order(tmp_path: Path) -> None:
    p = tmp_path / "x.txt"
    p.write_text("2 5\n1 3\n2 4\n1 1\n2 9\n")
    d = read_sasrec_txt(p)
    assert d.user_ids.tolist() == [1, 2]
    assert [s.tolist() for s in d.sequences] == [[3, 1], [5, 4, 9]]
    assert d.num_items == 9 and d.num_interactions == 5


def test_user_sequences(tmp_path: Path) -> None:
    p = tmp_path / "Beauty.txt"
    p.write_text("1 1 2 3\n2 4 2\n")
    d = read_user_sequences(p)
    assert [s.tolist() for s in d.sequences] == [[1, 2, 3], [4, 2]]
    assert d.num_items == 4


@pytest.mark.parametrize("reader", [read_sasrec_txt, read_user_sequences])
def test_id_zero_is_rejected_with_the_fix(tmp_path: Path, reader) -> None:
    p = tmp_path / "x.txt"
    p.write_text("1 0\n1 2\n" if reader is read_sasrec_txt else "1 0 2\n")
    with pytest.raises(ValueError, match=r"item id 0 .*reserved for padding.*id_offset=1"):
        reader(p)
    assert reader(p, id_offset=1).sequences[0].tolist() == [1, 3]


@pytest.mark.parametrize("reader", [read_sasrec_txt, read_user_sequences])
def test_non_integer_and_empty_files(tmp_path: Path, reader) -> None:
    p = tmp_path / "x.txt"
    p.write_text("1 3\n1 abc\n")
    with pytest.raises(ValueError, match=r"x.txt:2: 'abc' is not an integer id"):
        reader(p)
    p.write_text("\n\n")
    with pytest.raises(ValueError, match="contains no interactions"):
        reader(p)


def test_movielens_ratings_dat_sorted_by_time_and_remapped(tmp_path: Path) -> None:
    p = tmp_path / "ratings.dat"
    p.write_text("1::1193::5::300\n1::661::3::100\n2::1193::4::50\n1::914::3::200\n")
    d = read_movielens(p)
    # items remapped by source id: 661 -> 1, 914 -> 2, 1193 -> 3
    assert [s.tolist() for s in d.sequences] == [[1, 2, 3], [3]]
    assert d.item_ids is not None and d.item_ids[1:].tolist() == [661, 914, 1193]
    assert d.num_items == 3


def test_movielens_u_data_tab_separated(tmp_path: Path) -> None:
    p = tmp_path / "u.data"
    p.write_text("196\t242\t3\t881250949\n196\t302\t3\t881250000\n22\t377\t1\t878887116\n")
    d = read_movielens(p)
    assert d.user_ids.tolist() == [22, 196]
    assert [d.item_ids[s].tolist() for s in d.sequences] == [[377], [302, 242]]


def test_table_csv_kcore_and_string_ids(tmp_path: Path) -> None:
    p = tmp_path / "log.csv"
    rows = ["user,item,timestamp", "a,x,3", "a,y,1", "a,z,2", "b,x,5", "b,y,4", "c,w,1"]
    p.write_text("\n".join(rows) + "\n")
    d = read_interactions_table(p, min_user_interactions=2, min_item_interactions=2)
    # user c (1 action) and item w / z (1 action each) go; then every remaining user/item has >= 2
    assert d.user_ids.tolist() == ["a", "b"]
    assert [d.item_ids[s].tolist() for s in d.sequences] == [["y", "x"], ["y", "x"]]
    with pytest.raises(ValueError, match="has no time column 'when'"):
        read_interactions_table(p, time_col="when")
    with pytest.raises(ValueError, match="survive"):
        read_interactions_table(p, min_user_interactions=10)


def test_table_parquet(tmp_path: Path) -> None:
    p = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user": [1, 1, 2], "item": [10, 20, 10], "timestamp": [2, 1, 1]}), p)
    d = read_interactions_table(p)
    assert [d.item_ids[s].tolist() for s in d.sequences] == [[20, 10], [10]]
    assert isinstance(d.sequences[0], np.ndarray)
