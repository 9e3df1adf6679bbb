"""Readers for the interaction formats users actually have.

Every reader returns :class:`SequenceData`: one time-ordered item sequence per user, with item ids in
``1..num_items`` (``0`` is reserved for padding).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnkit.core.errors import DataFormatError

__all__ = [
    "SequenceData",
    "read_interactions_table",
    "read_movielens",
    "read_sasrec_txt",
    "read_user_sequences",
]

PathLike = str | os.PathLike[str]


@dataclass
class SequenceData:
    """Per-user, time-ordered item sequences.

    Attributes:
        sequences: one int64 array of item ids per user, oldest first; ids are in ``1..num_items``.
        num_items: size of the item catalogue (the largest id).
        user_ids: the user's id in the source file, one per sequence.
        item_ids: when ids were remapped, ``item_ids[i]`` is the source id of item ``i`` (index 0 unused);
            ``None`` when the file's ids are used as they are.

    """

    sequences: list[np.ndarray]
    num_items: int
    user_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    item_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.user_ids) == 0 and self.sequences:
            self.user_ids = np.arange(1, len(self.sequences) + 1, dtype=np.int64)

    @property
    def num_users(self) -> int:
        """Number of users."""
        return len(self.sequences)

    @property
    def num_interactions(self) -> int:
        """Number of (user, item) actions."""
        return int(sum(len(s) for s in self.sequences))


def _parse_ints(tokens: list[str], path: Path, lineno: int) -> list[int]:
    try:
        return [int(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise DataFormatError(
            f"{path}:{lineno}: {bad!r} is not an integer id; this reader expects integer user and item ids "
            "-- for string ids use read_interactions_table(), which remaps them"
        ) from None


def _check_ids(items: np.ndarray, path: Path, id_offset: int) -> None:
    if items.size == 0:
        raise DataFormatError(f"{path} contains no interactions; check the path and the file format")
    low = int(items.min())
    if low < 1:
        hint = f"pass id_offset={1 - low}" if low > -1_000_000 else "remap the ids"
        raise DataFormatError(
            f"item id {low} in {path} (after id_offset={id_offset}) is not >= 1; id 0 is reserved for "
            f"padding -- {hint}"
        )


def _group(
    users: np.ndarray, items: np.ndarray, order: np.ndarray | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Group items by user, keeping file order (or ``order``, stably) within a user; users sorted by id."""
    key = np.lexsort((order, users)) if order is not None else np.argsort(users, kind="stable")
    users, items = users[key], items[key]
    uniq, start = np.unique(users, return_index=True)
    return np.split(items, start[1:]), uniq


def read_sasrec_txt(path: PathLike, *, id_offset: int = 0) -> SequenceData:
    """Read the SASRec authors' format: one ``user item`` pair per line, in time order per user.

    Args:
        path: the text file (e.g. ``Video.txt`` of sasrec-games).
        id_offset: added to every item id (use 1 for files whose item ids start at 0).

    Returns:
        The sequences; ``num_items`` is the largest item id.

    Raises:
        ValueError: empty file, a non-integer id, a line without two fields or an item id < 1.

    """
    p = Path(path)
    users: list[int] = []
    items: list[int] = []
    with p.open() as f:
        for lineno, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) < 2:
                raise DataFormatError(f"{p}:{lineno}: expected `user item`, got {line.strip()!r}")
            u, i = _parse_ints(tokens[:2], p, lineno)
            users.append(u)
            items.append(i)
    it = np.asarray(items, dtype=np.int64) + id_offset
    _check_ids(it, p, id_offset)
    seqs, uids = _group(np.asarray(users, dtype=np.int64), it)
    return SequenceData(seqs, int(it.max()), uids)


def read_user_sequences(path: PathLike, *, id_offset: int = 0) -> SequenceData:
    """Read one user per line, ``user item item ...`` in time order (the S3-Rec / RecBole-style format).

    Args:
        path: the text file (e.g. ``Beauty.txt`` of s3rec-beauty).
        id_offset: added to every item id (use 1 for files whose item ids start at 0).

    Raises:
        ValueError: empty file, a non-integer id or an item id < 1.

    """
    p = Path(path)
    seqs: list[np.ndarray] = []
    uids: list[int] = []
    with p.open() as f:
        for lineno, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens:
                continue
            ids = _parse_ints(tokens, p, lineno)
            uids.append(ids[0])
            seqs.append(np.asarray(ids[1:], dtype=np.int64) + id_offset)
    flat = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
    _check_ids(flat, p, id_offset)
    return SequenceData(seqs, int(flat.max()), np.asarray(uids, dtype=np.int64))


def _remap_frame(users: np.ndarray, items: np.ndarray, times: np.ndarray, min_user: int, min_item: int,
                 path: Path) -> SequenceData:
    """k-core filter, remap items to 1..N (in order of first appearance by source id) and group by user."""
    keep = np.ones(len(users), dtype=bool)
    while True:  # k-core: repeat until every kept user and item has enough actions
        _, ui, uc = np.unique(users[keep], return_inverse=True, return_counts=True)
        _, ii, ic = np.unique(items[keep], return_inverse=True, return_counts=True)
        ok = (uc[ui] >= min_user) & (ic[ii] >= min_item)
        if ok.all():
            break
        idx = np.flatnonzero(keep)
        keep[idx[~ok]] = False
    users, items, times = users[keep], items[keep], times[keep]
    if users.size == 0:
        raise ValueError(
            f"no interactions in {path} survive the {min_user}-core (users) / {min_item}-core (items) "
            "filter; "
            "lower min_user_interactions / min_item_interactions"
        )
    src_items, dense = np.unique(items, return_inverse=True)
    seqs, uids = _group(users, dense.astype(np.int64) + 1, times)
    item_ids = np.concatenate([np.zeros(1, dtype=src_items.dtype), src_items])
    return SequenceData(seqs, len(src_items), uids, item_ids)


def read_movielens(
    path: PathLike, *, min_user_interactions: int = 0, min_item_interactions: int = 0
) -> SequenceData:
    """Read MovieLens ratings: ML-1M ``ratings.dat`` (``::``-separated) or ML-100k ``u.data`` (tab-separated).

    Every rating counts as an action (as in SASRec); actions are ordered by timestamp, ties in file order.
    Item ids are remapped to ``1..num_items``; ``item_ids`` maps back.

    Raises:
        ValueError: empty file, a line without ``user item rating timestamp`` or a non-integer field.

    """
    p = Path(path)
    sep = "::" if p.read_text(errors="replace")[:4096].count("::") else None
    rows: list[list[int]] = []
    with p.open(encoding="latin-1") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            tokens = line.strip().split(sep) if sep else line.split()
            if len(tokens) < 4:
                raise DataFormatError(f"{p}:{lineno}: expected `user item rating timestamp`, got {line.strip()!r}")
            rows.append(_parse_ints([tokens[0], tokens[1], tokens[3]], p, lineno))
    if not rows:
        raise DataFormatError(f"{p} contains no interactions; check the path and the file format")
    a = np.asarray(rows, dtype=np.int64)
    return _remap_frame(a[:, 0], a[:, 1], a[:, 2], min_user_interactions, min_item_interactions, p)


def read_interactions_table(
    path: PathLike,
    *,
    user_col: str = "user",
    item_col: str = "item",
    time_col: str | None = "timestamp",
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
) -> SequenceData:
    """Read a CSV or Parquet table of ``(user, item, timestamp)`` rows with k-core filtering and id remap.

    Ids may be strings or integers; items are remapped to ``1..num_items`` (``item_ids`` maps back).
    Rows are ordered by ``time_col`` within a user (file order when ``time_col`` is ``None``).

    Args:
        path: ``.csv`` / ``.tsv`` or ``.parquet`` file.
        user_col: column of user ids.
        item_col: column of item ids.
        time_col: column of timestamps (anything sortable), or ``None``.
        min_user_interactions: keep only users with at least this many actions (k-core, repeated with items).
        min_item_interactions: keep only items with at least this many actions.

    Raises:
        ValueError: unknown columns, an empty table, or nothing left after filtering.

    """
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    p = Path(path)
    if p.suffix == ".parquet":
        table = pq.read_table(p)
    else:
        delim = "\t" if p.suffix == ".tsv" else ","
        table = pacsv.read_csv(p, parse_options=pacsv.ParseOptions(delimiter=delim))
    cols = [c for c in (user_col, item_col, time_col) if c is not None]
    missing = [c for c in cols if c not in table.column_names]
    if missing:
        raise DataFormatError(f"{p} has no column(s) {missing}; its columns are {table.column_names} -- "
                         "pass user_col=, item_col=, time_col=")
    if table.num_rows == 0:
        raise DataFormatError(f"{p} contains no interactions; check the path and the file format")
    users = np.asarray(pc.cast(table[user_col], "string").to_numpy(zero_copy_only=False))
    items = np.asarray(table[item_col].to_numpy(zero_copy_only=False))
    times = (np.asarray(pc.rank(table[time_col], sort_keys="ascending", tiebreaker="first").to_numpy())
             if time_col is not None else np.arange(table.num_rows))
    _, users_dense = np.unique(users, return_inverse=True)
    data = _remap_frame(users_dense, items, times, min_user_interactions, min_item_interactions, p)
    data.user_ids = np.unique(users)[data.user_ids]
    return data
