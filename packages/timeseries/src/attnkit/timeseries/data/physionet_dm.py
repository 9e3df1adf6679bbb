"""PhysioNet2012DataModule: the SAITS paper's PhysioNet-2012 imputation protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from attnkit.core.data import dataset_dir
from attnkit.timeseries.data.base import ImputationDataModule, SeriesSplits
from attnkit.timeseries.data.physionet import load_physionet2012
from attnkit.timeseries.masking import MissingPattern

__all__ = ["PhysioNet2012DataModule"]


class PhysioNet2012DataModule(ImputationDataModule):
    """PhysioNet-2012 as in SAITS (Du et al. 2023): 11,988 records x 48 hours x 37 variables.

    Records are split 80/20 into train/test, then 20% of train becomes validation (by record, seeded);
    standardised with training statistics; 10% of the observed validation/test values are held out.

    Args:
        root: data root (``None``: ``ATTNKIT_DATA_DIR`` / registry); reads ``<root>/physionet2012/``.
        batch_size: records per batch (the paper: 128).
        holdout_rate: held-out fraction of observed validation/test values (the paper: 0.1).
        holdout_pattern: ``"mcar"`` (the paper), ``"block"`` or ``"subseq"``.
        seed: seed of the split and of the hold-out masks.
        cache_dir: where the processed arrays are cached (default ``~/.cache/attnkit/processed``).
        num_workers: unused (in-memory batches).
    """

    dataset_id = "physionet2012"
    protocol_name = "PhysioNet-2012 (SAITS, Du et al. 2023): 11,988 records x 48 h x 37, split 64/16/20 by record"

    def __init__(self, root: str | None = None, batch_size: int = 128, holdout_rate: float = 0.1,
                 holdout_pattern: MissingPattern = "mcar", seed: int = 2023, cache_dir: str | None = None,
                 num_workers: int = 0) -> None:
        super().__init__(root=root, num_steps=48, stride=48, batch_size=batch_size, holdout_rate=holdout_rate,
                         holdout_pattern=holdout_pattern, seed=seed, num_workers=num_workers)
        self.cache_dir = cache_dir

    def data_root(self) -> Path:  # noqa: D102
        d = dataset_dir(self.dataset_id, self.root)
        if all((d / f"set-{s}").is_dir() for s in "abc"):
            return d  # extracted folders placed by hand
        return super().data_root()

    @property
    def num_features(self) -> int:
        """37 after processing (read from the data)."""
        return len(self.splits.features)

    def load_splits(self) -> SeriesSplits:  # noqa: D102
        data = load_physionet2012(self.data_root(), self.cache_dir)
        n = data.x.shape[0]
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(n)
        n_test = round(0.2 * n)
        test, rest = order[:n_test], order[n_test:]
        n_val = round(0.2 * len(rest))
        val, train = rest[:n_val], rest[n_val:]
        self.split_ids = {k: data.record_ids[v] for k, v in (("train", train), ("val", val), ("test", test))}
        hours = pd.RangeIndex(48, name="hour")
        return SeriesSplits(
            train=list(data.x[train]), val=list(data.x[val]), test=list(data.x[test]), features=data.features,
            index=[hours] * len(test), series_names=[str(r) for r in data.record_ids[test]],
        )
