"""Dataset registry: named datasets, their files, licences and citations.

A dataset lives at ``<root>/<dataset-id>/`` where ``root`` is ``ATTNKIT_DATA_DIR`` or
``~/.cache/attnkit``. Files that are present are used as they are; missing files are downloaded from their
URL, verified against their sha256 and moved into place atomically (see :mod:`.download`). An archive
whose extracted contents are present (``RemoteFile.extracted``) counts as present.

What attnkit derives from the data (processed arrays, generated corpora) goes to :func:`cache_dir`, never
into the data root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from attnkit.core.errors import DataNotFoundError

__all__ = [
    "Dataset",
    "DatasetState",
    "DatasetUnavailableError",
    "RemoteFile",
    "cache_dir",
    "data_root",
    "dataset_dir",
    "fetch",
    "get_dataset",
    "register",
    "registered",
]

_REGISTRY: dict[str, Dataset] = {}


DatasetState = Literal["present", "partial", "missing", "unchecked"]


class DatasetUnavailableError(DataNotFoundError, RuntimeError):
    """A dataset file is missing and could not be downloaded; the message names the path, URL and sha256."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    Args:
        path: path relative to the dataset folder, with ``/`` separators.
        url: where a networked machine downloads it from (``None``: must be placed by hand).
        sha256: hex digest of the downloaded file (``None``: not verified).
        size: size in bytes, for listings and progress bars.
        extracted: glob patterns (relative to the dataset folder) of what the archive extracts to; when
            every pattern matches something, the file counts as present even if the archive is gone.
    """

    path: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    extracted: tuple[str, ...] = ()

    def present(self, folder: Path) -> bool:
        """Whether this file, or everything it extracts to, is under ``folder``."""
        if (folder / self.path).is_file():
            return True
        return bool(self.extracted) and all(next(iter(folder.glob(p)), None) is not None for p in self.extracted)


@dataclass(frozen=True)
class Dataset:
    """A registered dataset.

    Args:
        id: folder name under the data root, e.g. ``"sasrec-games"``.
        description: one line.
        files: the files it consists of.
        licence: licence or terms of use, as stated by the source.
        citation: what to cite.
        homepage: where to read about it.
        content: for a dataset without registered files (a folder the user fills, e.g. clean speech):
            glob patterns below its folder; it is present when at least one matches.
    """

    id: str
    description: str
    files: tuple[RemoteFile, ...] = field(default_factory=tuple)
    licence: str = "unknown"
    citation: str = ""
    homepage: str = ""
    content: tuple[str, ...] = ()

    @property
    def size(self) -> int | None:
        """Total size in bytes, when every file's size is known."""
        sizes = [f.size for f in self.files]
        return None if not sizes or any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    def missing(self, root: str | os.PathLike[str] | None = None) -> list[RemoteFile]:
        """Files not present under the data root (an archive counts as present when it is extracted)."""
        d = dataset_dir(self.id, root)
        return [f for f in self.files if not f.present(d)]

    def state(self, root: str | os.PathLike[str] | None = None) -> DatasetState:
        """What the loaders will find under the data root.

        Returns:
            ``"present"``: every registered file (or its extracted contents) is there, or, for a dataset
            without registered files, something matches ``content``; ``"partial"``: some files are
            missing; ``"missing"``: none is there (or nothing matches ``content``); ``"unchecked"``: a
            dataset without registered files nor ``content`` patterns whose folder is not empty.
        """
        if not self.files:
            d = dataset_dir(self.id, root)
            if not d.is_dir():
                return "missing"
            if self.content:
                found = any(next(iter(d.glob(p)), None) is not None for p in self.content)
                return "present" if found else "missing"
            return "unchecked" if next(iter(d.iterdir()), None) is not None else "missing"
        missing = self.missing(root)
        if not missing:
            return "present"
        return "missing" if len(missing) == len(self.files) else "partial"


def register(dataset: Dataset, *, replace: bool = False) -> Dataset:
    """Add ``dataset`` to the registry; re-registering the same definition is a no-op."""
    old = _REGISTRY.get(dataset.id)
    if old is not None and old != dataset and not replace:
        raise ValueError(f"dataset {dataset.id!r} is already registered differently; pass replace=True")
    _REGISTRY[dataset.id] = dataset
    return dataset


def get_dataset(dataset_id: str) -> Dataset:
    """The registered dataset ``dataset_id``."""
    try:
        return _REGISTRY[dataset_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(
            f"unknown dataset {dataset_id!r}; registered: {known}. Domain packages register theirs on "
            "import (e.g. `import attnkit.recsys`); `attnkit datasets` lists all."
        ) from None


def registered() -> list[Dataset]:
    """All registered datasets, sorted by id."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``root`` if given, else ``$ATTNKIT_DATA_DIR``, else ``~/.cache/attnkit``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("ATTNKIT_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "attnkit"


def dataset_dir(dataset_id: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``<root>/<dataset_id>``; does not check that it exists."""
    return data_root(root) / dataset_id


def cache_dir(name: str) -> Path:
    """Where data attnkit derives or generates is kept: ``$ATTNKIT_CACHE_DIR/<name>``.

    The default is ``~/.cache/attnkit/processed/<name>``. Processed arrays and generated corpora go here,
    never into the data root (which may be shared or read-only). Deleting the folder only costs the
    time to rebuild it. Does not create the folder.
    """
    env = os.environ.get("ATTNKIT_CACHE_DIR")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "attnkit" / "processed"
    return base / name


def fetch(
    dataset_id: str,
    root: str | os.PathLike[str] | None = None,
    *,
    files: list[str] | None = None,
    progress: bool = True,
) -> Path:
    """Make sure a dataset's files are present and return its folder.

    Present files are used as they are (files placed by hand may be re-packed and are not checksummed).
    Missing ones are downloaded with sha256 verification and an atomic rename.

    Args:
        dataset_id: a registered id.
        root: data root (default :func:`data_root`).
        files: only these relative paths (default: all).
        progress: show a progress bar while downloading.

    Raises:
        DatasetUnavailableError: a file is missing and cannot be downloaded (offline, no URL, 404,
            checksum mismatch); the message names the URL, the expected path and checksum.
    """
    from attnkit.core.data.download import download

    ds = get_dataset(dataset_id)
    d = dataset_dir(dataset_id, root)
    wanted = ds.files if files is None else tuple(f for f in ds.files if f.path in set(files))
    if files is not None and len(wanted) != len(set(files)):
        unknown = sorted(set(files) - {f.path for f in ds.files})
        raise KeyError(f"dataset {dataset_id!r} has no files {unknown}; it has {[f.path for f in ds.files]}")
    todo = [f for f in wanted if not f.present(d)]
    for n, f in enumerate(todo):
        target = d / f.path
        more = len(todo) - n - 1
        also = f" ({more} more file(s) of it are missing too; `attnkit datasets` shows its state)" if more else ""
        if f.url is None:
            raise DatasetUnavailableError(
                f"dataset {dataset_id!r}: {target} is missing and has no download URL{also}. Place the file "
                f"there by hand (licence: {ds.licence}; see {ds.homepage or 'the dataset docs'}), or set "
                "ATTNKIT_DATA_DIR to the data root that holds it."
            )
        try:
            download(f.url, target, sha256=f.sha256, size=f.size, progress=progress)
        except DatasetUnavailableError as e:
            raise DatasetUnavailableError(f"dataset {dataset_id!r}: {e}{also}") from None
    return d
