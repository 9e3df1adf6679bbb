"""Shared machinery of the imputation data modules: standardisation, windows, seeded hold-out masks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, RandomSampler

from attnkit.core.data.distributed import eval_sampler
from attnkit.timeseries.masking import MissingPattern, block_mask, mcar_mask_exact, subsequence_mask

__all__ = ["ImputationDataModule", "SeriesSplits", "WindowDataset", "make_windows"]


@dataclass
class SeriesSplits:
    """Raw series of each split, before standardisation.

    Attributes:
        train, val, test: lists of ``(T_i, F)`` float arrays with NaN = missing.
        features: the ``F`` column names.
        index: per test/predict series, the row labels (timestamps, hours) used when writing predictions.
        series_names: a name per predict series (station, record id), used in the output CSV.
        predict: the series ``attnkit predict`` imputes (default: ``test``).
    """

    train: list[np.ndarray]
    val: list[np.ndarray]
    test: list[np.ndarray]
    features: list[str]
    predict: list[np.ndarray] | None = None
    index: list[pd.Index] | None = None
    series_names: list[str] | None = None


def make_windows(series: list[np.ndarray], window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut series into ``(N, window, F)`` windows; the last window of each series ends at its end.

    Returns:
        ``(windows, origin)`` where ``origin (N, 2)`` holds (series index, start step).

    Raises:
        ValueError: a series is shorter than ``window`` (names its length and the fix).
    """
    out, origin = [], []
    for i, s in enumerate(series):
        t = s.shape[0]
        if t < window:
            raise ValueError(
                f"series {i} has {t} steps, shorter than the window of {window}; use a smaller window "
                "(num_steps) or SAITS.impute(), which pads short series with missing steps"
            )
        starts = list(range(0, t - window + 1, stride))
        if starts[-1] != t - window:
            starts.append(t - window)
        for st in starts:
            out.append(s[st : st + window])
            origin.append((i, st))
    return np.stack(out).astype(np.float32), np.asarray(origin, dtype=np.int64)


class WindowDataset(Dataset[dict[str, torch.Tensor]]):
    """Windows ``(N, L, F)`` (standardised, NaN = missing) with hold-out masks and origins.

    ``__getitems__`` slices a whole batch out of the stored tensors at once (the ``DataLoader`` calls it
    with the batch's indices), much faster than stacking per-window items.
    """

    def __init__(self, values: torch.Tensor, holdout: torch.Tensor, origin: torch.Tensor) -> None:
        self.values, self.holdout, self.origin = values, holdout, origin

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.values[i], "holdout": self.holdout[i], "origin": self.origin[i]}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """The batch of ``indices``: ``x``/``holdout`` ``(B, L, F)``, ``origin`` ``(B, 2)``."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {"x": self.values[idx], "holdout": self.holdout[idx], "origin": self.origin[idx]}


def _batched(batch: Any) -> Any:
    """Collate function for batches that :meth:`WindowDataset.__getitems__` already built (a dict of tensors)."""
    return batch


class ImputationDataModule(LightningDataModule):
    """Base of the imputation data modules: standardise, window, draw the seeded evaluation hold-out.

    Subclasses implement :meth:`load_splits`.

    Batches are dicts: ``x (B, L, F)`` standardised values with NaN where missing (held-out values are
    still present here; the task hides them), ``holdout (B, L, F)`` bool (always False in training),
    ``origin (B, 2)`` (series index, start step).

    Args:
        root: data root (``None``: ``ATTNKIT_DATA_DIR`` / the registry).
        num_steps: window length ``L``.
        stride: step between training windows (default ``num_steps``: non-overlapping).
        batch_size: windows per batch.
        holdout_rate: fraction of observed values held out as ground truth in validation and test.
        holdout_pattern: ``"mcar"`` (the paper: exactly ``rate`` of the observed values, uniformly),
            ``"block"`` or ``"subseq"``.
        seed: seed of the evaluation masks.
        num_workers: unused for in-memory windows (batches are sliced directly); kept for API symmetry.
    """

    dataset_id: str = ""
    protocol_name: str = "custom"

    def __init__(self, root: str | None = None, num_steps: int = 24, stride: int | None = None,
                 batch_size: int = 128, holdout_rate: float = 0.1, holdout_pattern: MissingPattern = "mcar",
                 seed: int = 2023, num_workers: int = 0) -> None:
        super().__init__()
        if num_steps < 2:
            raise ValueError(f"num_steps must be >= 2, got {num_steps}")
        if not 0.0 < holdout_rate < 1.0:
            raise ValueError(f"holdout_rate must be in (0, 1), got {holdout_rate}")
        self.root = root
        self.window = num_steps
        self.stride = stride or num_steps
        self.batch_size = batch_size
        self.holdout_rate, self.holdout_pattern = holdout_rate, holdout_pattern
        self.seed = seed
        self.num_workers = num_workers
        self._splits: SeriesSplits | None = None
        self._ready: dict[str, WindowDataset] = {}
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        # Shuffles the training windows; one permutation per epoch, saved in checkpoints (state_dict).
        self.train_generator = torch.Generator().manual_seed(seed)

    # -- to implement --------------------------------------------------------------------------------
    def load_splits(self) -> SeriesSplits:
        """Read the raw series of each split."""
        raise NotImplementedError

    # -- derived from the data -----------------------------------------------------------------------
    def data_root(self) -> Path:
        """The dataset folder (downloading registered files where the network allows)."""
        from attnkit.core.data import fetch

        return Path(fetch(self.dataset_id, root=self.root))

    @property
    def splits(self) -> SeriesSplits:
        """The raw splits, read once."""
        if self._splits is None:
            self._splits = self.load_splits()
            self._check(self._splits)
        return self._splits

    @property
    def num_features(self) -> int:
        """Number of variables ``F`` (reads the data on first use)."""
        return len(self.splits.features)

    @property
    def num_steps(self) -> int:
        """Window length ``L``."""
        return self.window

    @property
    def features(self) -> list[str]:
        """Column names."""
        return self.splits.features

    @property
    def protocol(self) -> str:
        """A one-line description of the evaluation protocol."""
        return (
            f"{self.protocol_name}: windows of {self.window} steps; standardised with training statistics; "
            f"{self.holdout_rate:.0%} of observed validation/test values held out ({self.holdout_pattern}, "
            f"seed {self.seed}); MAE/RMSE/MRE on held-out values only"
        )

    @staticmethod
    def _check(s: SeriesSplits) -> None:
        for name in ("train", "val", "test"):
            series = getattr(s, name)
            if not series:
                raise ValueError(f"the {name} split is empty; check the split dates/fractions")
            for a in series:
                if a.ndim != 2 or a.shape[1] != len(s.features):
                    raise ValueError(f"{name} series of shape {a.shape} does not have {len(s.features)} features")
                if np.isinf(a).any():
                    raise ValueError(
                        f"the {name} split contains infinite values; replace them with NaN (missing) or "
                        "finite numbers before imputation"
                    )
        stacked = np.concatenate([~np.isnan(a) for a in s.train])
        observed = [bool(stacked[:, j].any()) for j in range(stacked.shape[1])]
        if not all(observed):
            bad = [f for f, ok in zip(s.features, observed, strict=True) if not ok]
            raise ValueError(
                f"features {bad} have no observed value in the training split, so they cannot be "
                "standardised or learned; drop these columns"
            )

    def setup(self, stage: str | None = None) -> None:
        """Standardise, window and draw the hold-out masks (once)."""
        if self._ready:
            return
        s = self.splits
        flat = np.concatenate([a.reshape(-1, a.shape[-1]) for a in s.train]).astype(np.float64)
        self.mean = np.nanmean(flat, axis=0)
        std = np.nanstd(flat, axis=0)
        self.std = np.where(std > 0, std, 1.0)
        gen = torch.Generator().manual_seed(self.seed)
        parts = {"train": s.train, "val": s.val, "test": s.test,
                 "predict": s.predict if s.predict is not None else s.test}
        for name, series in parts.items():
            std_series = [((a - self.mean) / self.std).astype(np.float32) for a in series]
            stride = self.stride if name == "train" else (self.window if name != "predict" else self.stride)
            w, origin = make_windows(std_series, self.window, stride)
            values = torch.from_numpy(w)
            observed = ~torch.isnan(values)
            if name in ("val", "test"):
                holdout = self._holdout(observed, gen)
            else:
                holdout = torch.zeros_like(observed)
            self._ready[name] = WindowDataset(values, holdout, torch.from_numpy(origin))

    def _holdout(self, observed: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.holdout_pattern == "mcar":
            return mcar_mask_exact(observed, self.holdout_rate, gen)
        if self.holdout_pattern == "block":
            return block_mask(observed, self.holdout_rate, generator=gen)
        if self.holdout_pattern == "subseq":
            return subsequence_mask(observed, self.holdout_rate, gen)
        raise ValueError(f"unknown holdout_pattern {self.holdout_pattern!r}; choose 'mcar', 'block' or 'subseq'")

    def dataset(self, split: str) -> WindowDataset:
        """The windows of ``split`` (train/val/test/predict)."""
        self.setup()
        return self._ready[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader[dict[str, torch.Tensor]]:
        """A ``DataLoader`` over ``split``.

        Training shuffles with :attr:`train_generator` in one process; under DDP Lightning swaps in a
        ``DistributedSampler`` (distinct shares, seeded by ``seed_everything``, reshuffled per epoch).
        Evaluation gives each window to exactly one process (:func:`~attnkit.core.data.distributed.eval_sampler`).
        """
        ds = self.dataset(split)
        sampler = RandomSampler(ds, generator=self.train_generator) if shuffle else eval_sampler(ds)
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, collate_fn=_batched)

    def state_dict(self) -> dict[str, Any]:
        """The shuffling state, so a resumed run continues the same sequence of epoch orders."""
        return {"train_generator": self.train_generator.get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (Lightning calls this when resuming from a checkpoint)."""
        if "train_generator" in state_dict:
            self.train_generator.set_state(state_dict["train_generator"])

    def train_dataloader(self):  # type: ignore[no-untyped-def]  # noqa: D102
        return self._loader("train", True)

    def val_dataloader(self):  # type: ignore[no-untyped-def]  # noqa: D102
        return self._loader("val", False)

    def test_dataloader(self):  # type: ignore[no-untyped-def]  # noqa: D102
        return self._loader("test", False)

    def predict_dataloader(self):  # type: ignore[no-untyped-def]  # noqa: D102
        return self._loader("predict", False)

    # -- writing predictions -------------------------------------------------------------------------
    def predictions_frame(self, imputed: np.ndarray, origin: np.ndarray) -> pd.DataFrame:
        """Stitch imputed predict windows (standardised) back into series on the original scale.

        Args:
            imputed: ``(N, L, F)`` standardised imputations of the predict windows.
            origin: ``(N, 2)`` (series index, start step) of each window.

        Returns:
            A long DataFrame: ``series``, ``step`` (or the series' index), then one column per feature.
            Steps without a predicted window (a truncated predict run) keep their NaNs.
        """
        from attnkit.timeseries.impute import stitch

        s = self.splits
        series = s.predict if s.predict is not None else s.test
        assert self.mean is not None and self.std is not None
        frames = []
        for i, raw in enumerate(series):
            sel = origin[:, 0] == i
            est = stitch(imputed[sel], origin[sel, 1], raw.shape[0], allow_gaps=True) * self.std + self.mean
            filled = np.where(np.isnan(raw), est, raw)
            df = pd.DataFrame(filled, columns=s.features)
            idx = s.index[i] if s.index is not None else pd.RangeIndex(raw.shape[0], name="step")
            df.insert(0, idx.name or "step", np.asarray(idx))
            df.insert(0, "series", s.series_names[i] if s.series_names is not None else str(i))
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def write_predictions(self, imputed: np.ndarray, origin: np.ndarray, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`predictions_frame` as CSV and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.predictions_frame(imputed, origin).to_csv(path, index=False)
        return path
