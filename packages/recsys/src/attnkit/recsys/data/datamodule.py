"""SequentialDataModule: reads a dataset, fixes the leave-one-out split, builds batched loaders."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from attnkit.core.data.distributed import eval_sampler
from attnkit.core.errors import DataFormatError, DataNotFoundError
from attnkit.recsys.data.formats import (
    SequenceData,
    read_interactions_table,
    read_movielens,
    read_negatives_file,
    read_sasrec_txt,
    read_user_sequences,
)
from attnkit.recsys.data.source import Format, resolve_dataset, sniff_format
from attnkit.recsys.data.split import LeaveOneOut, leave_one_out
from attnkit.recsys.sampling import sample_negatives

__all__ = ["SequentialDataModule", "left_pad"]

Negatives = Literal["uniform", "popularity"]
Exclude = Literal["train", "all"]


def left_pad(seqs: list[np.ndarray], max_len: int) -> Tensor:
    """Keep the last ``max_len`` items of each sequence and left-pad with ``0`` to ``(U, max_len)``."""
    out = np.zeros((len(seqs), max_len), dtype=np.int64)
    for i, s in enumerate(seqs):
        s = s[-max_len:]
        if len(s):
            out[i, max_len - len(s):] = s
    return torch.from_numpy(out)


class _History:
    """Per-row item histories in CSR form; gathers sorted, zero-padded ``(B, H)`` blocks without loops."""

    def __init__(self, seqs: list[np.ndarray]) -> None:
        lengths = np.asarray([len(s) for s in seqs], dtype=np.int64)
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)]))
        flat = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
        self.flat = torch.from_numpy(np.concatenate([flat.astype(np.int64), [0]]))  # sentinel 0 at the end

    def rows(self, idx: Tensor) -> Tensor:
        start, end = self.offsets[idx], self.offsets[idx + 1]
        lengths = end - start
        h = max(int(lengths.max()) if len(idx) else 0, 1)
        ar = torch.arange(h)
        pos = start.unsqueeze(1) + ar
        valid = ar < lengths.unsqueeze(1)
        vals = torch.where(valid, self.flat[pos.clamp(max=len(self.flat) - 1)], 0)
        return vals.sort(dim=1).values


class _Batches(Dataset[dict[str, Tensor]]):
    """Rows of aligned tensors; ``__getitems__`` builds a whole batch at once (vectorised)."""

    def __init__(self, tensors: dict[str, Tensor], history: _History) -> None:
        self.tensors, self.history = tensors, history
        self.n = len(next(iter(tensors.values())))

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, indices: list[int]) -> dict[str, Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        batch = {k: v[idx] for k, v in self.tensors.items()}
        batch["history"] = self.history.rows(idx)
        return batch

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}


def _identity(batch: Any) -> Any:
    return batch


_sniff = sniff_format  # kept for callers of the old private name


class SequentialDataModule(pl.LightningDataModule):
    """Next-item data under the SASRec authors' leave-one-out protocol.

    Per user: last item = test, second-to-last = validation, the rest = training; users with fewer than
    3 actions only train. Training yields each user's last ``max_len`` training transitions
    (``seq -> pos``). Validation feeds the training items and ranks the validation item; test feeds the
    training items plus the validation item and ranks the test item. Each evaluated user gets
    ``num_eval_negatives`` items drawn (with replacement; uniformly by default) from those not in the
    user's training items (``negatives_exclude="all"``: none of the user's items), fixed once by ``seed``,
    or the fixed negatives of ``negatives_file``. Sequences longer than ``max_len`` keep the most recent
    items. :attr:`protocol` describes the evaluation in one line.

    Batches are dicts of tensors: training ``seq``/``pos`` ``(B, L)``; evaluation ``seq`` ``(B, L)``,
    ``target`` ``(B,)``, ``candidates`` ``(B, 1 + n)`` (target first); all carry ``history`` ``(B, H)``
    (the input items, sorted, 0-padded) and ``user`` ``(B,)`` (row index; see :attr:`user_ids`).

    Args:
        dataset: a registered id (``sasrec-games``, ``s3rec-beauty``, ``ml-1m``, ``ml-100k``), a file or folder
            path, or a folder name under the data root holding one interaction file
            (``my-shop`` -> ``$ATTNKIT_DATA_DIR/my-shop/<file>``). ``None``: ``sasrec-games`` unless ``path``.
        root: data root (``None``: ``ATTNKIT_DATA_DIR`` / registry default).
        path: the same as passing a file path as ``dataset`` (kept for older configs); giving both is an error.
        format: reader (``auto`` guesses from the name and content; registered datasets know theirs).
        user_column: tables: user-id column (``None``: detected, e.g. ``user``, ``user_id``, ``userId``).
        item_column: tables: item-id column (``None``: detected, e.g. ``item``, ``item_id``, ``movieId``, ``asin``).
        time_column: tables: timestamp column; ``"auto"``: detected (``timestamp``, ``time``, ``date``, ...), else
            file order; ``None``: file order.
        rating_column: tables: rating column, used with ``min_rating``.
        min_rating: tables: keep only rows rated at least this (``None``: every row is an action).
        column_names: tables without a header row: the column names, e.g. ``[user, item, rating, timestamp]``.
        negatives: how evaluation negatives are drawn: ``uniform`` (the paper) or ``popularity`` (proportional
            to the item's count in the training split).
        negatives_exclude: ``train`` (the SASRec authors' code: not among the user's training items) or
            ``all`` (none of the user's items, incl. the validation and test items, as S3-Rec and most later
            work).
        negatives_file: fixed negatives, one line per user ``user neg neg ...`` in the data file's ids
            (S3-Rec's ``<name>_sample.txt``); used for validation and test, overrides ``negatives`` and
            ``num_eval_negatives``. A relative path is looked up next to the data file first.
        max_len: sequence length ``L`` fed to the model.
        batch_size: training batch size.
        eval_batch_size: evaluation / prediction batch size.
        num_eval_negatives: sampled negatives per evaluated user (100 in the paper).
        eval_users: evaluate a random subset of this many users (the authors use 10,000); ``None``: all.
        seed: seed of the evaluation negatives and of the user subsample.
        id_offset: added to item ids of ``sasrec``/``user_sequences`` files whose ids start at 0.
        min_user_interactions: k-core filter for MovieLens / table files.
        min_item_interactions: k-core filter for MovieLens / table files.
        num_workers: DataLoader workers.

    """

    def __init__(
        self,
        dataset: str | None = None,
        root: str | None = None,
        path: str | None = None,
        format: Format = "auto",
        user_column: str | None = None,
        item_column: str | None = None,
        time_column: str | None = "auto",
        rating_column: str | None = None,
        min_rating: float | None = None,
        column_names: list[str] | None = None,
        negatives: Negatives = "uniform",
        negatives_exclude: Exclude = "train",
        negatives_file: str | None = None,
        max_len: int = 50,
        batch_size: int = 128,
        eval_batch_size: int = 512,
        num_eval_negatives: int = 100,
        eval_users: int | None = None,
        seed: int = 42,
        id_offset: int = 0,
        min_user_interactions: int = 0,
        min_item_interactions: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if path is not None and dataset is not None:
            raise DataFormatError(
                f"both dataset={dataset!r} and path={path!r} given (--data.dataset and --data.path); pass one, so "
                f"that the run's saved config says which data it used -- on the command line: --data.dataset {path} "
                "(a file, a folder, or a name under ATTNKIT_DATA_DIR)"
            )
        if negatives not in ("uniform", "popularity"):
            raise ValueError(f"negatives must be 'uniform' or 'popularity', got {negatives!r}")
        if negatives_exclude not in ("train", "all"):
            raise ValueError(f"negatives_exclude must be 'train' or 'all', got {negatives_exclude!r}")
        for name, value in (("max_len", max_len), ("batch_size", batch_size),
                            ("eval_batch_size", eval_batch_size), ("num_eval_negatives", num_eval_negatives)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if eval_users is not None and eval_users < 1:
            raise ValueError(f"eval_users must be >= 1 or None (all users), got {eval_users}")
        self.save_hyperparameters()
        if dataset is None and path is None:
            dataset = "sasrec-games"
        self.dataset, self.root, self.path, self.format = dataset, root, path, format
        self.table_args: dict[str, Any] = {
            "user_col": user_column, "item_col": item_column, "time_col": time_column,
            "rating_col": rating_column, "min_rating": min_rating, "column_names": column_names,
        }
        self.negatives, self.negatives_exclude, self.negatives_file = negatives, negatives_exclude, negatives_file
        self._source: Path | None = None
        self.max_len, self.batch_size, self.eval_batch_size = max_len, batch_size, eval_batch_size
        self.num_eval_negatives, self.eval_users, self.seed = num_eval_negatives, eval_users, seed
        self.id_offset, self.num_workers = id_offset, num_workers
        self.min_user_interactions, self.min_item_interactions = min_user_interactions, min_item_interactions
        self._data: SequenceData | None = None
        self.split: LeaveOneOut | None = None
        self._sets: dict[str, _Batches] = {}

    # ------------------------------------------------------------------ reading
    def _file(self) -> tuple[Path, Format]:
        if self.path is not None:
            p = Path(self.path)
            if not p.is_file():
                raise DataNotFoundError(
                    f"interaction file {p} (--data.path) does not exist; pass an existing file, or a registered "
                    "dataset id or a folder under ATTNKIT_DATA_DIR as --data.dataset (`attnkit datasets` lists them)"
                )
            fmt: Format | None = None
        else:
            assert self.dataset is not None
            p, fmt = resolve_dataset(self.dataset, self.root)
        self._source = p
        if self.format != "auto":
            return p, self.format
        return p, fmt or sniff_format(p)

    @property
    def data(self) -> SequenceData:
        """The interactions, read on first access."""
        if self._data is None:
            p, fmt = self._file()
            if fmt == "sasrec":
                self._data = read_sasrec_txt(p, id_offset=self.id_offset)
            elif fmt == "user_sequences":
                self._data = read_user_sequences(p, id_offset=self.id_offset)
            elif fmt == "movielens":
                self._data = read_movielens(p, min_user_interactions=self.min_user_interactions,
                                            min_item_interactions=self.min_item_interactions)
            elif fmt == "table":
                self._data = read_interactions_table(p, min_user_interactions=self.min_user_interactions,
                                                      min_item_interactions=self.min_item_interactions,
                                                      **self.table_args)
            else:
                raise ValueError(f"bad format {fmt!r}; choose auto, sasrec, user_sequences, movielens, table")
        return self._data

    @property
    def source(self) -> Path:
        """The interaction file read (resolved from ``dataset`` / ``path``)."""
        if self._source is None:
            self._file()
        assert self._source is not None
        return self._source

    @property
    def protocol(self) -> str:
        """A one-line description of the evaluation protocol (printed by the task at test start)."""
        if self.negatives_file is not None:
            cands = f"the fixed negatives of {self.negatives_file}"
        else:
            which = "uniformly" if self.negatives == "uniform" else "by training popularity"
            excl = "the user's training items" if self.negatives_exclude == "train" else "all of the user's items"
            cands = (f"{self.num_eval_negatives} negatives drawn {which} (with replacement) excluding {excl}, "
                     f"seed {self.seed}")
        n = len(self._sets["test"]) if "test" in self._sets else None
        users = f"{n} users" if n is not None else "users with >= 3 actions"
        if self.eval_users is not None:
            users += f" (a random {self.eval_users} at most)"
        return (f"{self.source.name}: leave-one-out (last item test, second-to-last validation); hr@K/ndcg@K/mrr "
                f"are SAMPLED metrics: the true item ranked against {cands}; {users}; full_* metrics rank all "
                "items except the input history")

    def item_popularity(self) -> np.ndarray:
        """``(N + 1,)`` int64 count of each item id in the training split (index 0 = padding, 0)."""
        self.setup()
        assert self.split is not None
        flat = np.concatenate(self.split.train) if self.split.train else np.zeros(0, dtype=np.int64)
        return np.bincount(flat, minlength=self.split.num_items + 1).astype(np.int64)

    def _fixed_negatives(self, ev: np.ndarray) -> Tensor:
        assert self.negatives_file is not None and self.split is not None
        f = Path(self.negatives_file).expanduser()
        if not f.is_absolute() and not f.is_file() and (self.source.parent / f).is_file():
            f = self.source.parent / f
        table = read_negatives_file(f, self.data, id_offset=self.id_offset)
        uids = self.split.user_ids[ev]
        rows, missing = [], []
        for u in uids:
            negs = table.get(u.item() if hasattr(u, "item") else u)
            if negs is None:
                missing.append(u)
            else:
                rows.append(negs)
        if missing:
            raise ValueError(f"{f}: no negatives for {len(missing)} evaluated user(s), e.g. user {missing[0]!r}; the "
                             "file needs one line per user with >= 3 actions, in the data file's user ids")
        return torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, 1, dtype=torch.long)

    @property
    def num_items(self) -> int:
        """Catalogue size ``N`` (item ids ``1..N``)."""
        return self.data.num_items

    @property
    def user_ids(self) -> np.ndarray:
        """Source user id per row (``batch["user"]`` indexes this)."""
        return self.data.user_ids

    @property
    def item_ids(self) -> np.ndarray | None:
        """Source item id per model id when ids were remapped, else ``None``."""
        return self.data.item_ids

    # ------------------------------------------------------------------ split
    def setup(self, stage: str | None = None) -> None:
        """Split and build the fixed tensors (once)."""
        if self.split is not None:
            return
        data = self.data
        sp = self.split = leave_one_out(data)
        n_items, big_l = sp.num_items, self.max_len
        rows = torch.arange(data.num_users)

        trainable = np.flatnonzero([len(t) >= 2 for t in sp.train])
        if len(trainable) == 0:
            raise ValueError("no user has 2 or more training actions, so there is nothing to train on; "
                             "check the file (each line one action, users with >= 3 actions are evaluated)")
        tr = [sp.train[u] for u in trainable]
        self._sets["train"] = _Batches(
            {"seq": left_pad([t[:-1] for t in tr], big_l), "pos": left_pad([t[1:] for t in tr], big_l),
             "user": torch.from_numpy(trainable)},
            _History(tr),
        )

        ev = sp.evaluated
        if self.eval_users is not None and len(ev) > self.eval_users:
            rng = np.random.default_rng(self.seed)
            ev = np.sort(rng.choice(ev, self.eval_users, replace=False))
        gen = torch.Generator().manual_seed(self.seed)
        excluded = _History([sp.train[u] if self.negatives_exclude == "train" else data.sequences[u] for u in ev])
        weights = torch.from_numpy(self.item_popularity()) if self.negatives == "popularity" else None
        fixed = self._fixed_negatives(ev) if self.negatives_file is not None else None

        def draw() -> Tensor:  # by default negatives exclude the user's training items, as in the authors' code
            if fixed is not None:
                return fixed
            out = [sample_negatives(excluded.rows(torch.arange(s, min(s + 2048, len(ev)))), n_items,
                                    (self.num_eval_negatives,), generator=gen, weights=weights)
                   for s in range(0, len(ev), 2048)]
            return torch.cat(out) if out else torch.zeros(0, self.num_eval_negatives, dtype=torch.long)

        users = torch.from_numpy(ev)
        for stage_name, inputs, target in (
            ("val", [sp.train[u] for u in ev], sp.valid[ev]),
            ("test", [np.append(sp.train[u], sp.valid[u]) for u in ev], sp.test[ev]),
        ):
            t = torch.from_numpy(target)
            self._sets[stage_name] = _Batches(
                {"seq": left_pad(inputs, big_l), "target": t,
                 "candidates": torch.cat([t.unsqueeze(1), draw()], dim=1), "user": users},
                _History(inputs),
            )
        self._sets["predict"] = _Batches(
            {"seq": left_pad(data.sequences, big_l), "user": rows}, _History(data.sequences)
        )

    def _loader(self, name: str, shuffle: bool) -> DataLoader[Any]:
        self.setup()
        ds = self._sets[name]
        if name != "train" and len(ds) == 0:
            raise ValueError("no user has 3 or more actions, so there is nothing to evaluate (leave-one-out "
                             "needs a training, a validation and a test item per user)")
        # Training: Lightning swaps in a DistributedSampler under DDP (distinct shuffled shares per epoch).
        # Evaluation: each user on exactly one process, no padded repeats (RankingMetrics sums its states).
        sampler = None if name == "train" else eval_sampler(ds)
        return DataLoader(ds, batch_size=self.batch_size if name == "train" else self.eval_batch_size,
                          shuffle=shuffle, sampler=sampler, collate_fn=_identity, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("predict", shuffle=False)
