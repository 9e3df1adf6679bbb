"""Readers for the interaction formats users actually have.

Every reader returns :class:`SequenceData`: one time-ordered item sequence per user, with item ids in
``1..num_items`` (``0`` is reserved for padding).
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnkit.core.errors import DataFormatError

__all__ = [
    "SequenceData",
    "read_interactions_table",
    "read_movielens",
    "read_negatives_file",
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
        ValueError: empty file, a line with a user and no items, a non-integer id or an item id < 1.

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
            if len(ids) < 2:
                raise DataFormatError(
                    f"{p}:{lineno}: user {ids[0]} has an empty sequence (a user id and no items); every line "
                    "must be `user item item ...` -- remove the line or add the user's items"
                )
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
        raise DataFormatError(
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


#: Column names tried, in order, when a table's user / item / time column is not given.
USER_COLUMNS = ("user", "user_id", "userid", "userId", "uid", "reviewerID", "customer_id", "visitorid",
                "session_id", "session")
ITEM_COLUMNS = ("item", "item_id", "itemid", "itemId", "iid", "movieId", "movie_id", "asin", "product_id",
                "track_id", "business_id")
TIME_COLUMNS = ("timestamp", "time", "ts", "datetime", "date", "unixReviewTime", "event_time")


def _pick(names: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, p: Path,
          required: bool = True) -> str | None:
    if wanted is not None:
        if wanted not in names:
            raise DataFormatError(f"{p} has no {what} column {wanted!r}; its columns are {names} -- pass the right "
                             f"name (data.{what}_column / {what}_col=)")
        return wanted
    lower = {n.lower(): n for n in names}
    for c in candidates:
        if c.lower() in lower:
            return lower[c.lower()]
    if required:
        raise DataFormatError(
            f"{p}: cannot tell which column holds the {what} ids; its columns are {names}. Pass "
            f"data.{what}_column (Python: {what}_col=); a file without a header row needs "
            "column_names=[user, item, ...]"
        )
    return None


def read_interactions_table(
    path: PathLike,
    *,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = "auto",
    rating_col: str | None = None,
    min_rating: float | None = None,
    column_names: list[str] | None = None,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
) -> SequenceData:
    """Read a CSV / TSV / Parquet table of ``(user, item[, timestamp][, rating])`` rows.

    Ids may be strings or integers; items are remapped to ``1..num_items`` in order of their source id
    (``item_ids`` maps back). Rows are ordered by the time column within a user, ties in file order;
    without a time column, file order is the time order. The delimiter of text files is detected
    (comma, tab, semicolon, ``|`` or whitespace).

    Args:
        path: ``.csv``, ``.tsv``, ``.txt``, ``.csv.gz`` or ``.parquet`` file.
        user_col: column of user ids (``None``: the first of :data:`USER_COLUMNS` present).
        item_col: column of item ids (``None``: the first of :data:`ITEM_COLUMNS` present).
        time_col: column of timestamps (numbers or ISO 8601 dates); ``"auto"``: the first of
            :data:`TIME_COLUMNS` present, else file order; ``None``: file order.
        rating_col: column of ratings, used only with ``min_rating``.
        min_rating: keep only rows with ``rating >= min_rating`` (e.g. 4 for "liked" items); ``None``: every
            row is an action, whatever its rating.
        column_names: names for a file without a header row (e.g. ``["user", "item", "rating", "timestamp"]``
            for the Amazon "ratings only" CSVs).
        min_user_interactions: keep only users with at least this many actions (k-core, repeated with items).
        min_item_interactions: keep only items with at least this many actions.

    Raises:
        ValueError: unknown or undetectable columns, an empty table, non-numeric ratings, or nothing left
            after filtering (each names the file and the fix).

    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"interaction table {p} does not exist")
    if p.suffix.lower() == ".parquet":
        table = pq.read_table(p)
        if column_names is not None:
            table = table.rename_columns(list(column_names))
    else:
        opener: Any = gzip.open if p.suffix.lower() == ".gz" else open
        with opener(p, "rt", errors="replace") as f:
            head = f.readline()
        delim = next((d for d in ("\t", ",", ";", "|") if d in head), " ")
        read_opts = pacsv.ReadOptions(column_names=list(column_names)) if column_names else pacsv.ReadOptions()
        try:
            if delim == " ":  # whitespace-separated: normalise runs of blanks first
                with opener(p, "rt") as f:
                    text = "\n".join(" ".join(line.split()) for line in f if line.strip())
                table = pacsv.read_csv(io.BytesIO(text.encode()), read_options=read_opts,
                                       parse_options=pacsv.ParseOptions(delimiter=" "))
            else:
                table = pacsv.read_csv(p, read_options=read_opts, parse_options=pacsv.ParseOptions(delimiter=delim))
        except pa.ArrowInvalid as e:
            raise DataFormatError(f"{p}: not a readable {delim!r}-separated table ({e}); check the file") from None
    names = list(table.column_names)
    ucol = _pick(names, user_col, USER_COLUMNS, "user", p)
    icol = _pick(names, item_col, ITEM_COLUMNS, "item", p)
    tcol = (_pick(names, None, TIME_COLUMNS, "time", p, required=False) if time_col == "auto"
            else _pick(names, time_col, (), "time", p) if time_col is not None else None)
    if table.num_rows == 0:
        raise DataFormatError(f"{p} contains no interactions (a header and no rows); check the path and the file")
    if min_rating is not None:
        rcol = _pick(names, rating_col, ("rating", "ratings", "score", "stars", "overall"), "rating", p)
        assert rcol is not None
        try:
            r = pc.cast(table[rcol], pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataFormatError(f"{p}: rating column {rcol!r} is not numeric; pass rating_col= with the numeric "
                             "rating column, or drop min_rating") from None
        table = table.filter(pc.fill_null(pc.greater_equal(r, min_rating), False))
        if table.num_rows == 0:
            raise DataFormatError(f"{p}: no row has {rcol} >= {min_rating}; lower min_rating")
    for c in (ucol, icol):
        if table[c].null_count:
            raise DataFormatError(f"{p}: column {c!r} has {table[c].null_count} empty value(s); every row needs a "
                             "user and an item -- drop those rows")
    users = np.asarray(pc.cast(table[ucol], "string").to_numpy(zero_copy_only=False))
    items = np.asarray(table[icol].to_numpy(zero_copy_only=False))
    times = (np.asarray(pc.rank(table[tcol], sort_keys="ascending", tiebreaker="first").to_numpy())
             if tcol is not None else np.arange(table.num_rows))
    _, users_dense = np.unique(users, return_inverse=True)
    data = _remap_frame(users_dense, items, times, min_user_interactions, min_item_interactions, p)
    data.user_ids = np.unique(users)[data.user_ids]
    return data


def read_negatives_file(path: PathLike, data: SequenceData, *, id_offset: int = 0) -> dict[object, np.ndarray]:
    """Read fixed evaluation negatives: one line per user, ``user neg neg ...`` (S3-Rec's ``<name>_sample.txt``).

    Args:
        path: the text file (whitespace-separated).
        data: the interactions the ids refer to: source user ids are matched against ``data.user_ids`` and
            source item ids are mapped through ``data.item_ids`` when the items were remapped.
        id_offset: added to the item ids when the data's ids are used as they are (as for the data file).

    Returns:
        ``{source user id: negatives (n,) as model item ids}``; every line has the same ``n``.

    Raises:
        ValueError: a line with no negatives or a different count, an unknown item id (names file and line).

    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"negatives file {p} does not exist")
    lookup: dict[str, int] | None = None
    if data.item_ids is not None:
        lookup = {str(v): i for i, v in enumerate(data.item_ids) if i > 0}
    user_type = type(data.user_ids[0].item()) if len(data.user_ids) else str
    out: dict[object, np.ndarray] = {}
    width: int | None = None
    with p.open() as f:
        for lineno, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) < 2:
                raise DataFormatError(
                    f"{p}:{lineno}: user {tokens[0]} has no negatives; each line is `user neg neg ...`")
            if width is None:
                width = len(tokens) - 1
            elif len(tokens) - 1 != width:
                raise DataFormatError(f"{p}:{lineno}: {len(tokens) - 1} negatives, but line 1 has {width}; every user "
                                 "needs the same number")
            if lookup is None:
                negs = np.asarray(_parse_ints(tokens[1:], p, lineno), dtype=np.int64) + id_offset
                bad = negs[(negs < 1) | (negs > data.num_items)]
            else:
                miss = [t for t in tokens[1:] if t not in lookup]
                if miss:
                    raise DataFormatError(f"{p}:{lineno}: item {miss[0]!r} does not occur in the interaction data; "
                                     "the negatives file must use the data file's item ids")
                negs = np.asarray([lookup[t] for t in tokens[1:]], dtype=np.int64)
                bad = negs[:0]
            if bad.size:
                raise DataFormatError(f"{p}:{lineno}: item id {int(bad[0])} is outside 1..{data.num_items}; the "
                                      "negatives must use the data file's item ids (and the same id_offset)")
            try:
                key: object = user_type(tokens[0])
            except ValueError:
                key = tokens[0]
            out[key] = negs
    if not out:
        raise DataFormatError(f"{p} contains no lines; expected `user neg neg ...` per line")
    return out
