"""Speech-quality datasets: the NISQA corpus CSV format, any CSV of scored audio, a simulated corpus.

Items are NISQA log-mel segments of one file ``(L, 1, 48, 15)`` with its scores ``(K,)``; batches are
zero-padded to the longest file with a padding mask (:func:`collate_quality`).
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from attnkit.audio.io import AudioFileError, read_audio, resample
from attnkit.audio.quality.features import NISQAFeatures, pad_segments
from attnkit.audio.quality.model import DIMENSIONS
from attnkit.audio.quality.registry import CLEAN_SPEECH, NISQA_CORPUS
from attnkit.core.data.distributed import eval_sampler
from attnkit.core.errors import DataFormatError, DataNotFoundError

__all__ = [
    "NISQA_TEST_DBS",
    "NISQA_TRAIN_DBS",
    "NISQA_VAL_DBS",
    "QualityDataset",
    "SimulatedQualityDataModule",
    "SpeechQualityDataModule",
    "collate_quality",
    "read_quality_csv",
]

NISQA_TRAIN_DBS = ("NISQA_TRAIN_SIM", "NISQA_TRAIN_LIVE")
NISQA_VAL_DBS = ("NISQA_VAL_SIM", "NISQA_VAL_LIVE")
NISQA_TEST_DBS = ("NISQA_TEST_FOR", "NISQA_TEST_LIVETALK", "NISQA_TEST_P501")


def read_quality_csv(
    path: str | os.PathLike[str],
    path_column: str,
    score_columns: Sequence[str],
) -> list[dict[str, str]]:
    """Rows of a scores CSV, checking that the needed columns exist and scores are numbers.

    Raises:
        ValueError: a missing column or a non-numeric score, naming the file, row and column.

    """
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"scores CSV {p} does not exist; check csv_file (--data.csv_file) and root")
    with p.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        missing = [c for c in (path_column, *score_columns) if c not in cols]
        if missing:
            raise DataFormatError(
                f"{p}: missing column(s) {missing}; it has {cols}. Set path_column / score_columns "
                "to the names your CSV uses"
            )
        rows = list(reader)
    for i, r in enumerate(rows, start=2):
        for c in score_columns:
            try:
                float(r[c])
            except (TypeError, ValueError):
                raise DataFormatError(f"{p}, line {i}: score column {c!r} holds {r[c]!r}, not a number") from None
    return rows


class QualityDataset(Dataset[tuple[Tensor, Tensor]]):
    """Audio files with scores -> ``(segments (L, 1, M, S), scores (K,))``.

    Args:
        files: audio paths.
        scores: ``(N, K)`` targets.
        features: the feature extractor (its ``max_segments`` bounds the length).
        sample_rate: resample every file to this rate first (``None``: native rate, as the original NISQA).
        cache: keep computed segments in memory (float16) after the first epoch.
        channel: multi-channel handling (see :func:`attnkit.audio.io.to_mono`).

    """

    def __init__(
        self,
        files: Sequence[Path],
        scores: Tensor,
        features: NISQAFeatures | None = None,
        *,
        sample_rate: int | None = None,
        cache: bool = True,
        channel: str | int = "mean",
    ) -> None:
        if len(files) != len(scores):
            raise ValueError(f"{len(files)} files but {len(scores)} score rows")
        self.files, self.scores = list(files), scores.float()
        self.features = features or NISQAFeatures()
        self.sample_rate, self.cache, self.channel = sample_rate, cache, channel
        self._cache: dict[int, Tensor] = {}
        self.groups: list[str] | None = None  # database / split value per file, when the CSV has one

    def __len__(self) -> int:
        return len(self.files)

    def segments(self, i: int) -> Tensor:
        """Segments of file ``i`` ``(L, 1, M, S)`` (float32)."""
        if i in self._cache:
            return self._cache[i].float()
        x, sr = read_audio(self.files[i], channel=self.channel)  # type: ignore[arg-type]
        if self.sample_rate is not None and sr != self.sample_rate:
            x, sr = resample(x, sr, self.sample_rate), self.sample_rate
        if not bool(torch.isfinite(x).all()):
            raise AudioFileError(f"{self.files[i]}: contains NaN or infinite samples")
        seg = self.features(x, sr, name=str(self.files[i]))
        if self.cache:
            self._cache[i] = seg.half()
        return seg

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.segments(i), self.scores[i]


def collate_quality(batch: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """Pad a list of ``(segments (L_i, 1, M, S), scores (K,))``.

    Returns:
        ``segments (B, L_max, 1, M, S)``, ``lengths (B,)``, ``mask (B, L_max)`` (True = real segment),
        ``target (B, K)``.

    """
    segs, lengths = pad_segments([b[0] for b in batch])
    mask = torch.arange(segs.shape[1])[None, :] < lengths[:, None]
    return {"segments": segs, "lengths": lengths, "mask": mask, "target": torch.stack([b[1] for b in batch])}


class SpeechQualityDataModule(pl.LightningDataModule):
    """A CSV of audio files with quality scores; by default the NISQA Corpus (``NISQA_corpus_file.csv``).

    Paths in the CSV are relative to the CSV's folder (or absolute). Splits come from ``split_column``
    (the NISQA corpus's ``db``) when the CSV has it, otherwise from a seeded random split by row.

    Args:
        root: data root (``None``: ``ATTNKIT_DATA_DIR``); the CSV is ``<root>/<dataset>/<csv_file>``.
        dataset: dataset folder under the root; ``None`` when ``csv_file`` is a full path.
        csv_file: the scores CSV.
        path_column: column with the degraded file's path.
        score_columns: target columns (the model's outputs, linked by the CLI).
        split_column: column naming each row's database / split.
        train_splits: values of ``split_column`` used for training.
        val_splits: ... for validation.
        test_splits: ... for testing (and predicting).
        val_fraction: random split when there is no ``split_column``.
        test_fraction: random split when there is no ``split_column``.
        batch_size: files per batch.
        num_workers: loader workers.
        sample_rate: resample to this rate first (``None``: native rate, as the original NISQA).
        max_segments: longest file in segments (1300 = about 52 s).
        cache: keep features in memory.
        seed: random split seed.
        channel: multi-channel files: ``"mean"`` (average, as the original NISQA), ``"error"`` or an index.

    """

    def __init__(
        self,
        root: str | None = None,
        dataset: str | None = NISQA_CORPUS,
        csv_file: str = "NISQA_corpus_file.csv",
        path_column: str = "filepath_deg",
        score_columns: list[str] | None = None,
        split_column: str | None = "db",
        train_splits: list[str] | None = None,
        val_splits: list[str] | None = None,
        test_splits: list[str] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        batch_size: int = 16,
        num_workers: int = 0,
        sample_rate: int | None = None,
        max_segments: int = 1300,
        cache: bool = True,
        seed: int = 0,
        channel: str | int = "mean",
    ) -> None:
        super().__init__()
        self.channel = channel
        self.root, self.dataset, self.csv_file = root, dataset, csv_file
        self.path_column = path_column
        self.score_columns = list(score_columns or DIMENSIONS)
        self.split_column = split_column
        self.train_splits = list(train_splits or NISQA_TRAIN_DBS)
        self.val_splits = list(val_splits or NISQA_VAL_DBS)
        self.test_splits = list(test_splits or NISQA_TEST_DBS)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.batch_size, self.num_workers = batch_size, num_workers
        self.sample_rate, self.cache, self.seed = sample_rate, cache, seed
        self.features = NISQAFeatures(max_segments=max_segments)
        self.splits: dict[str, QualityDataset] = {}

    def csv_path(self) -> Path:
        """Where the scores CSV is."""
        from attnkit.core.data import dataset_dir

        if self.dataset is None:
            return Path(self.csv_file if self.root is None else Path(self.root) / self.csv_file)
        return dataset_dir(self.dataset, self.root) / self.csv_file

    def _split_rows(self, rows: list[dict[str, str]], csv_path: Path) -> dict[str, list[dict[str, str]]]:
        if self.split_column and rows and self.split_column in rows[0]:
            out = {
                "train": [r for r in rows if r[self.split_column] in self.train_splits],
                "val": [r for r in rows if r[self.split_column] in self.val_splits],
                "test": [r for r in rows if r[self.split_column] in self.test_splits],
            }
            if not out["train"]:
                found = sorted({r[self.split_column] for r in rows})
                raise ValueError(
                    f"{csv_path}: no rows with {self.split_column} in {self.train_splits}; "
                    f"values present: {found}. Set train_splits / val_splits / test_splits"
                )
            return out
        order = np.random.default_rng(self.seed).permutation(len(rows))
        n_val, n_test = round(self.val_fraction * len(rows)), round(self.test_fraction * len(rows))
        pick = lambda idx: [rows[i] for i in sorted(idx)]
        return {
            "val": pick(order[:n_val]),
            "test": pick(order[n_val : n_val + n_test]),
            "train": pick(order[n_val + n_test :]),
        }

    def _make(self, rows: list[dict[str, str]], base: Path) -> QualityDataset:
        files = [
            Path(r[self.path_column]) if Path(r[self.path_column]).is_absolute() else base / r[self.path_column]
            for r in rows
        ]
        scores = torch.tensor([[float(r[c]) for c in self.score_columns] for r in rows]).reshape(
            len(rows), len(self.score_columns)
        )
        ds = QualityDataset(files, scores, self.features, sample_rate=self.sample_rate, cache=self.cache,
                            channel=getattr(self, "channel", "mean"))
        if self.split_column and rows and self.split_column in rows[0]:
            ds.groups = [r[self.split_column] for r in rows]
        return ds

    def prepare_data(self) -> None:
        """For a registered dataset whose CSV is missing: fetch its archive (where the network allows) and unzip."""
        path = self.csv_path()
        if path.is_file() or self.dataset is None:
            return
        from attnkit.core.data import DatasetUnavailableError, dataset_dir, fetch, get_dataset

        try:
            ds = get_dataset(self.dataset)
        except KeyError:
            return
        try:
            folder = fetch(self.dataset, self.root)
        except DatasetUnavailableError as e:
            raise DatasetUnavailableError(f"scores CSV {path} not found and the download failed: {e}") from None
        import zipfile

        for f in ds.files:
            if f.path.endswith(".zip") and not path.is_file():
                print(f"attnkit: extracting {folder / f.path} into {dataset_dir(self.dataset, self.root)} (once)",
                      file=sys.stderr)
                with zipfile.ZipFile(folder / f.path) as z:
                    z.extractall(dataset_dir(self.dataset, self.root))

    def setup(self, stage: str | None = None) -> None:
        """Read the CSV and build the splits."""
        if self.splits:
            return
        path = self.csv_path()
        if not path.is_file():
            raise DataNotFoundError(
                f"{path}: scores CSV not found. For the NISQA Corpus download NISQA_Corpus.zip "
                "(https://github.com/gabrielmittag/NISQA/wiki/NISQA-Corpus) and extract it into "
                f"{path.parent}; for your own data pass dataset: null and csv_file: /path/to/scores.csv"
            )
        rows = read_quality_csv(path, self.path_column, self.score_columns)
        for name, part in self._split_rows(rows, path).items():
            self.splits[name] = self._make(part, path.parent)

    def _loader(self, split: str, shuffle: bool) -> DataLoader[Any]:
        self.setup()
        ds = self.splits[split]
        if len(ds) == 0:
            raise ValueError(f"the {split} split of {self.csv_path()} is empty; check the split settings")
        # Training: Lightning swaps in a DistributedSampler under DDP (distinct shuffled shares per epoch).
        # Evaluation: each file on exactly one process, no padded repeats (exact PCC/RMSE across processes).
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=None if shuffle else eval_sampler(ds),
            num_workers=self.num_workers,
            collate_fn=collate_quality,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
        )

    def train_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("test", False)

    def predict_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("test", False)


class SimulatedQualityDataModule(SpeechQualityDataModule):
    """A simulated corpus generated from clean speech (see :mod:`attnkit.audio.quality.simulate`).

    The corpus is written once to ``<cache>/nisqa-simulated/seed<S>-n<N>-sr<R>-<hash of the clean folder>/``
    (NISQA CSV format, splits ``SIM_TRAIN`` / ``SIM_VAL`` / ``SIM_TEST`` by clean source) and reused
    afterwards; ``<cache>`` is ``cache_dir`` or ``$ATTNKIT_CACHE_DIR`` (default ``~/.cache/attnkit/processed``),
    never the data root. Building it prints the folder and shows a progress bar.

    Args:
        root: data root (``None``: ``ATTNKIT_DATA_DIR``).
        clean_dataset: folder of clean speech under the root.
        clean_dir: any folder of clean speech instead (overrides ``clean_dataset``).
        num_clips: clips to generate.
        seed: generation and shuffling seed.
        sample_rate: rate of the generated clips.
        max_seconds: clips are cropped to this length.
        batch_size: files per batch.
        num_workers: loader workers.
        cache: keep features in memory.
        cache_dir: folder for the generated corpus (default ``$ATTNKIT_CACHE_DIR/nisqa-simulated``).

    """

    def __init__(
        self,
        root: str | None = None,
        clean_dataset: str = CLEAN_SPEECH,
        clean_dir: str | None = None,
        num_clips: int = 1000,
        seed: int = 0,
        sample_rate: int = 16000,
        max_seconds: float = 4.0,
        batch_size: int = 16,
        num_workers: int = 0,
        cache: bool = True,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(
            root=root,
            dataset=None,
            csv_file="",
            score_columns=list(DIMENSIONS),
            split_column="db",
            train_splits=["SIM_TRAIN"],
            val_splits=["SIM_VAL"],
            test_splits=["SIM_TEST"],
            batch_size=batch_size,
            num_workers=num_workers,
            cache=cache,
            seed=seed,
        )
        self.clean_dataset, self.clean_dir = clean_dataset, clean_dir
        self.num_clips, self.gen_sample_rate, self.max_seconds = num_clips, sample_rate, max_seconds
        self.cache_dir = cache_dir

    def clean_folder(self) -> Path:
        """The folder of clean speech the corpus is built from."""
        from attnkit.core.data import dataset_dir

        return Path(self.clean_dir) if self.clean_dir else dataset_dir(self.clean_dataset, self.root)

    def corpus_dir(self) -> Path:
        """Folder of the generated corpus: one per settings and clean folder, under the cache folder."""
        import hashlib

        from attnkit.core.data import cache_dir

        base = Path(self.cache_dir) if self.cache_dir else cache_dir("nisqa-simulated")
        source = hashlib.sha256(str(self.clean_folder().expanduser().resolve()).encode()).hexdigest()[:8]
        return base / f"seed{self.seed}-n{self.num_clips}-sr{self.gen_sample_rate}-{source}"

    def csv_path(self) -> Path:  # noqa: D102
        from attnkit.audio.quality.simulate import CSV_NAME

        return self.corpus_dir() / CSV_NAME

    def prepare_data(self) -> None:
        """Generate the corpus if it is not there yet."""
        from attnkit.audio.quality.simulate import generate_corpus

        clean = self.clean_folder()
        if not clean.is_dir():
            raise DataNotFoundError(
                f"{clean}: no clean speech folder. Put clean speech there (any format "
                "libsndfile reads) or pass clean_dir: /path/to/clean/speech"
            )
        generate_corpus(
            clean,
            self.corpus_dir(),
            num_clips=self.num_clips,
            seed=self.seed,
            sample_rate=self.gen_sample_rate,
            max_seconds=self.max_seconds,
        )

    def setup(self, stage: str | None = None) -> None:  # noqa: D102
        if not self.csv_path().is_file():
            self.prepare_data()
        super().setup(stage)
