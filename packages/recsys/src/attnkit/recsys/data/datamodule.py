"""SequentialDataModule: reads a dataset, fixes the leave-one-out split, builds batched loaders."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from attnkit.core.data import fetch
from attnkit.core.data.distributed import eval_sampler
from attnkit.core.errors import DataNotFoundError
from attnkit.recsys.data.formats import (
    SequenceData,
    read_interactions_table,
    read_movielens,
    read_sasrec_txt,
    read_user_sequences,
)
from attnkit.recsys.data.registry import DATASET_FILES
from attnkit.recsys.data.split import LeaveOneOut, leave_one_out
from attnkit.recsys.sampling import sample_negatives

__all__ = ["SequentialDataModule", "left_pad"]

Format = Literal["auto", "sasrec", "user_sequences", "movielens", "table"]


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


def _sniff(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix in {".csv", ".tsv", ".parquet"}:
        return "table"
    if suffix in {".dat", ".data"} or path.name == "u.data":
        return "movielens"
    with path.open() as f:
        for _, line in zip(range(1000), f, strict=False):
            if len(line.split()) > 2:
                return "user_sequences"
    return "sasrec"


class SequentialDataModule(pl.LightningDataModule):
    """Next-item data under the SASRec authors' leave-one-out protocol.

    Per user: last item = test, second-to-last = validation, the rest = training; users with fewer than
    3 actions only train. Training yields each user's last ``max_len`` training transitions
    (``seq -> pos``). Validation feeds the training items and ranks the validation item; test feeds the
    training items plus the validation item and ranks the test item. Each evaluated user gets
    ``num_eval_negatives`` items drawn uniformly (with replacement) from those not in the user's training
    items, fixed once by ``seed``. Sequences longer than ``max_len`` keep the most recent items.

    Batches are dicts of tensors: training ``seq``/``pos`` ``(B, L)``; evaluation ``seq`` ``(B, L)``,
    ``target`` ``(B,)``, ``candidates`` ``(B, 1 + n)`` (target first); all carry ``history`` ``(B, H)``
    (the input items, sorted, 0-padded) and ``user`` ``(B,)`` (row index; see :attr:`user_ids`).

    Args:
        dataset: registered dataset id (``sasrec-games``, ``s3rec-beauty``, ``ml-1m``, ``ml-100k``).
        root: data root (``None``: ``ATTNKIT_DATA_DIR`` / registry default).
        path: read this file instead of a registered dataset.
        format: reader for ``path`` (``auto`` guesses from the name and content).
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
        dataset: str = "sasrec-games",
        root: str | None = None,
        path: str | None = None,
        format: Format = "auto",
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
        if path is None and dataset not in DATASET_FILES:
            raise ValueError(
                f"unknown dataset {dataset!r}; choose one of {sorted(DATASET_FILES)} or pass path= to a file"
            )
        for name, value in (("max_len", max_len), ("batch_size", batch_size),
                            ("eval_batch_size", eval_batch_size), ("num_eval_negatives", num_eval_negatives)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if eval_users is not None and eval_users < 1:
            raise ValueError(f"eval_users must be >= 1 or None (all users), got {eval_users}")
        self.save_hyperparameters()
        self.dataset, self.root, self.path, self.format = dataset, root, path, format
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
                    f"interaction file {p} (--data.path) does not exist; pass an existing file, or leave path "
                    "unset and name a registered dataset (--data.dataset; `attnkit datasets` lists them)"
                )
            return p, (_sniff(p) if self.format == "auto" else self.format)
        name, member, fmt = DATASET_FILES[self.dataset]
        d = fetch(self.dataset, root=self.root)
        p = d / name
        if member is None:
            return p, fmt  # type: ignore[return-value]
        out = d / member
        if not out.is_file():
            try:
                with zipfile.ZipFile(p) as z:
                    z.extract(member, d)
            except OSError:  # read-only data folder: extract to a temporary folder instead
                tmp = Path(tempfile.mkdtemp(prefix=f"attnkit-{self.dataset}-"))
                with zipfile.ZipFile(p) as z:
                    z.extract(member, tmp)
                out = tmp / member
        return out, fmt  # type: ignore[return-value]

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
                                                      min_item_interactions=self.min_item_interactions)
            else:
                raise ValueError(f"bad format {fmt!r}; choose auto, sasrec, user_sequences, movielens, table")
        return self._data

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
        train_hist = _History([sp.train[u] for u in ev])

        def draw() -> Tensor:  # negatives exclude the user's training items, as in the authors' code
            out = [sample_negatives(train_hist.rows(torch.arange(s, min(s + 2048, len(ev)))), n_items,
                                    (self.num_eval_negatives,), generator=gen)
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
