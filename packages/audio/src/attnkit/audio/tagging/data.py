"""Chunk datasets and the :class:`MusicTaggingDataModule`.

Training draws one random crop of ``chunk_seconds`` per clip and epoch; validation, test and prediction
cut each clip into evenly spaced chunks whose predictions the task averages into one song-level
prediction.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import soundfile as sf
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from attnkit.audio.tagging.formats import (
    MTAT_TOP50,
    EmptyTags,
    TagFileError,
    TaggedClip,
    UnknownTags,
    apply_vocabulary,
    read_collection,
    top_tags,
)
from attnkit.core.data.distributed import eval_sampler

__all__ = ["ChunkDataset", "MusicTaggingDataModule", "SongDataset", "check_audio", "load_clip", "song_chunks"]


def load_clip(path: str | os.PathLike[str], sample_rate: int) -> Tensor:
    """Decode a file to mono float32 at ``sample_rate`` (soundfile, torchaudio resampling).

    Raises:
        attnkit.audio.io.AudioFileError: unreadable file (the message names it and the fix).

    """
    from attnkit.audio.io import load_audio

    wav, _ = load_audio(path, sample_rate, channel="mean")
    return wav.contiguous()


def _fit(wav: Tensor, n: int) -> Tensor:
    return wav[:n] if wav.numel() >= n else torch.nn.functional.pad(wav, (0, n - wav.numel()))


def song_chunks(wav: Tensor, chunk: int, max_chunks: int | None = None) -> Tensor:
    """Evenly spaced chunks covering a whole clip: ``(N,) -> (M, chunk)``, ``M = ceil(N / chunk)``.

    A clip shorter than a chunk gives one chunk padded with silence; otherwise chunks start at evenly
    spaced offsets from 0 to ``N - chunk`` (overlapping slightly when ``N`` is not a multiple of ``chunk``).
    """
    n = wav.numel()
    if n <= chunk:
        return _fit(wav, chunk).unsqueeze(0)
    m = math.ceil(n / chunk)
    if max_chunks:
        m = min(m, max_chunks)
    starts = torch.linspace(0, n - chunk, m).round().long() if m > 1 else torch.tensor([(n - chunk) // 2])
    return torch.stack([wav[s : s + chunk] for s in starts.tolist()])


def check_audio(
    clips: Sequence[TaggedClip], sample_rate: int, chunk_seconds: float, *, source: str = "dataset"
) -> list[TaggedClip]:
    """Drop clips whose audio cannot be read and warn about short ones.

    Unreadable clips are listed in one warning; clips shorter
    than a chunk (they are padded with silence).

    Raises:
        TagFileError: none of the clips is readable.

    """
    ok, bad, short = [], [], []
    for c in clips:
        try:
            info = sf.info(str(c.path))
            if info.frames <= 0:
                raise RuntimeError("no audio frames")
        except Exception as e:
            bad.append(f"{c.path} ({'missing' if not Path(c.path).exists() else type(e).__name__})")
            continue
        if info.frames / info.samplerate < chunk_seconds:
            short.append(f"{Path(c.path).name} ({info.frames / info.samplerate:.1f} s)")
        ok.append(c)
    if bad:
        warnings.warn(
            f"{source}: {len(bad)} of {len(clips)} audio files are missing or unreadable and are left out: "
            f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}. Re-download or convert them "
            "(soundfile/libsndfile reads WAV, FLAC, Ogg, MP3)",
            stacklevel=2,
        )
    if short:
        warnings.warn(
            f"{source}: {len(short)} clips are shorter than the {chunk_seconds:g} s chunk and are padded "
            f"with silence: {', '.join(short[:5])}{' ...' if len(short) > 5 else ''}",
            stacklevel=2,
        )
    if clips and not ok:
        raise TagFileError(f"{source}: none of the {len(clips)} audio files can be read (first: {bad[0]})")
    return ok


def _targets(clip: TaggedClip, index: dict[str, int]) -> Tensor:
    y = torch.zeros(len(index))
    for t in clip.tags:
        y[index[t]] = 1.0
    return y


class ChunkDataset(Dataset[tuple[Tensor, Tensor]]):
    """Training samples: a random ``chunk`` of each clip, its multi-hot tags.

    Items are ``(wav (chunk,), targets (K,))``.
    """

    def __init__(
        self, clips: Sequence[TaggedClip], tags: Sequence[str], sample_rate: int, chunk: int
    ) -> None:
        self.clips, self.sample_rate, self.chunk = list(clips), sample_rate, chunk
        self.index = {t: i for i, t in enumerate(tags)}

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        c = self.clips[i]
        wav = load_clip(c.path, self.sample_rate)
        n = wav.numel()
        start = int(torch.randint(0, n - self.chunk + 1, ()).item()) if n > self.chunk else 0
        return _fit(wav[start : start + self.chunk], self.chunk), _targets(c, self.index)


class SongDataset(Dataset[tuple[Tensor, Tensor, int]]):
    """Evaluation samples: all chunks of a clip, its tags and its index: ``((M, chunk), (K,), i)``."""

    def __init__(
        self,
        clips: Sequence[TaggedClip],
        tags: Sequence[str],
        sample_rate: int,
        chunk: int,
        max_chunks: int | None = None,
    ) -> None:
        self.clips, self.sample_rate, self.chunk, self.max_chunks = (
            list(clips),
            sample_rate,
            chunk,
            max_chunks,
        )
        self.index = {t: i for i, t in enumerate(tags)}

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, int]:
        c = self.clips[i]
        wav = load_clip(c.path, self.sample_rate)
        return song_chunks(wav, self.chunk, self.max_chunks), _targets(c, self.index), i


def collate_songs(batch: Sequence[tuple[Tensor, Tensor, int]]) -> dict[str, Tensor]:
    """Stack songs' chunks.

    Returns:
        ``chunks (sum M, chunk)``, ``song (sum M,)`` (0..S-1), ``targets (S, K)``, ``index (S,)``.

    """
    chunks = torch.cat([b[0] for b in batch])
    song = torch.cat([torch.full((b[0].shape[0],), j, dtype=torch.long) for j, b in enumerate(batch)])
    return {
        "chunks": chunks,
        "song": song,
        "targets": torch.stack([b[1] for b in batch]),
        "index": torch.tensor([b[2] for b in batch]),
    }


class MusicTaggingDataModule(pl.LightningDataModule):
    """Tagged audio for :class:`~attnkit.audio.tagging.task.MusicTaggingTask`.

    Args:
        dataset: a registered dataset id (``"mtat"``, ``"tagging-scores"``) found under the data root, or a
            path: a folder with ``annotations_final.csv`` (MagnaTagATune layout) or ``tags.csv``
            (``path,tags[,split]``), a CSV file, or a folder of per-tag sub-folders.
        root: data root for registered ids (default ``ATTNKIT_DATA_DIR``); ignored for paths.
        format: ``"auto"``, ``"mtat"``, ``"csv"`` or ``"folder"``.
        tags: the tag vocabulary (order = model outputs). Default: the MTAT top-50 for MTAT, otherwise the
            training clips' tags with at least ``min_tag_count`` positives, by frequency.
        top_k: keep only the ``top_k`` most frequent training tags (when ``tags`` is not given).
        min_tag_count: see ``tags``.
        unknown_tags: tags outside an explicit ``tags`` list: ``"error"`` or ``"ignore"``.
        empty_tags: clips with no tag in the vocabulary: ``"keep"`` (all-negative), ``"drop"`` or ``"error"``.
        sample_rate: audio is resampled to this rate (must match the model's).
        chunk_seconds: training crop and evaluation chunk length.
        max_eval_chunks: at most this many chunks per song in evaluation (default: all).
        batch_size: training chunks per batch.
        eval_batch_size: songs per evaluation batch.
        num_workers: DataLoader workers.
        check_files: check every file's header at setup (drops unreadable files with a warning, warns about
            clips shorter than a chunk).
        limit_per_split: use at most this many clips per split (quick runs).

    """

    def __init__(
        self,
        dataset: str = "tagging-scores",
        root: str | None = None,
        format: Literal["auto", "mtat", "csv", "folder"] = "auto",
        tags: list[str] | None = None,
        top_k: int | None = None,
        min_tag_count: int = 1,
        unknown_tags: UnknownTags = "error",
        empty_tags: EmptyTags = "keep",
        sample_rate: int = 16000,
        chunk_seconds: float = 5.0,
        max_eval_chunks: int | None = None,
        batch_size: int = 16,
        eval_batch_size: int = 4,
        num_workers: int = 0,
        check_files: bool = True,
        limit_per_split: int | None = None,
    ) -> None:
        super().__init__()
        if chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
        self.dataset, self.root, self.format = dataset, root, format
        self._tags_arg = list(tags) if tags is not None else None
        self.top_k, self.min_tag_count = top_k, min_tag_count
        self.unknown_tags, self.empty_tags = unknown_tags, empty_tags
        self.sample_rate, self.chunk_seconds, self.max_eval_chunks = (
            sample_rate,
            chunk_seconds,
            max_eval_chunks,
        )
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.check_files, self.limit_per_split = check_files, limit_per_split
        self._clips: list[TaggedClip] | None = None
        self._vocab: list[str] | None = None
        self.splits: dict[str, list[TaggedClip]] = {}

    # -- reading -------------------------------------------------------------------------------------------
    def dataset_path(self) -> Path:
        """Return the folder or file the collection is read from."""
        p = Path(self.dataset).expanduser()
        if p.exists() or os.sep in self.dataset or p.suffix:
            return p
        from attnkit.core.data import dataset_dir, get_dataset

        try:
            get_dataset(self.dataset)
        except KeyError as e:
            raise TagFileError(
                f"{self.dataset!r} is neither a path nor a registered dataset ({e.args[0]})"
            ) from None
        d = dataset_dir(self.dataset, self.root)
        if self.dataset == "mtat":
            from attnkit.audio.tagging.registry import extract_mtat
            from attnkit.core.data import fetch

            if not (d / "annotations_final.csv").is_file():
                fetch("mtat", self.root)  # raises DatasetUnavailableError naming URLs and paths when offline
            extract_mtat(d)
        if not d.exists():
            hint = (
                "build it with `python -m attnkit.audio.tagging.scores " + str(d) + "`"
                if self.dataset == "tagging-scores"
                else "see `attnkit datasets` and docs/audio-tagging.md"
            )
            raise TagFileError(f"dataset {self.dataset!r} not found at {d}; {hint}")
        return d

    def _read(self) -> tuple[list[TaggedClip], list[str]]:
        if self._clips is None or self._vocab is None:
            path = self.dataset_path()
            clips = read_collection(path, self.format)
            is_mtat = (
                self.format == "mtat"
                or (path / "annotations_final.csv").is_file()
                or path.name == ("annotations_final.csv")
            )
            if self._tags_arg is not None:
                vocab, unknown = self._tags_arg, self.unknown_tags
            elif is_mtat:
                vocab, unknown = list(MTAT_TOP50), "ignore"
            else:
                vocab, unknown = top_tags(clips, self.top_k, self.min_tag_count), "ignore"
            if len(set(vocab)) != len(vocab):
                raise TagFileError(
                    f"tags contains duplicates: {sorted(t for t in set(vocab) if vocab.count(t) > 1)}"
                )
            self._clips = apply_vocabulary(
                clips, vocab, unknown=unknown, empty=self.empty_tags, source=str(path)
            )
            self._vocab = list(vocab)
        return self._clips, self._vocab

    @property
    def tag_names(self) -> list[str]:
        """The tag vocabulary (model output order)."""
        return self._read()[1]

    @property
    def num_tags(self) -> int:
        """Number of tags (linked to the model by the CLI)."""
        return len(self.tag_names)

    @property
    def chunk(self) -> int:
        """Chunk length in samples."""
        return round(self.chunk_seconds * self.sample_rate)

    def setup(self, stage: str | None = None) -> None:  # noqa: D102
        if self.splits:
            return
        clips, _ = self._read()
        for split in ("train", "val", "test"):
            part = [c for c in clips if c.split == split]
            if self.limit_per_split:
                part = part[: self.limit_per_split]
            if self.check_files:
                part = check_audio(
                    part, self.sample_rate, self.chunk_seconds, source=f"{self.dataset} [{split}]"
                )
            self.splits[split] = part
        for split in ("train", "val", "test"):
            if not self.splits[split]:
                raise TagFileError(
                    f"{self.dataset}: the {split} split is empty; give some clips split={split} "
                    "(CSV 'split' column) or add more clips"
                )

    # -- loaders ---------------------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:  # noqa: D102
        ds = ChunkDataset(self.splits["train"], self.tag_names, self.sample_rate, self.chunk)
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            drop_last=len(ds) > self.batch_size,
            persistent_workers=self.num_workers > 0,
        )

    def _songs(self, split: str) -> DataLoader:
        ds = SongDataset(
            self.splits[split], self.tag_names, self.sample_rate, self.chunk, self.max_eval_chunks
        )
        # each song on exactly one process, no padded repeats (TagAUC concatenates its states)
        return DataLoader(
            ds, batch_size=self.eval_batch_size, sampler=eval_sampler(ds), collate_fn=collate_songs,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:  # noqa: D102
        return self._songs("val")

    def test_dataloader(self) -> DataLoader:  # noqa: D102
        return self._songs("test")

    def predict_dataloader(self) -> DataLoader:  # noqa: D102
        return self._songs("test")

    def clip_paths(self, split: str) -> list[str]:
        """Paths of a split's clips, in loader order."""
        return [str(c.path) for c in self.splits[split]]

    def describe(self) -> dict[str, Any]:
        """Clips per split and positives per tag in each split."""
        out: dict[str, Any] = {}
        for split, clips in self.splits.items():
            counts = np.zeros(self.num_tags, dtype=int)
            index = {t: i for i, t in enumerate(self.tag_names)}
            for c in clips:
                for t in c.tags:
                    counts[index[t]] += 1
            out[split] = {
                "clips": len(clips),
                "positives": dict(zip(self.tag_names, counts.tolist(), strict=True)),
            }
        return out
