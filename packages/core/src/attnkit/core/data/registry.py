"""Dataset registry: named datasets, their files, licences and citations.

A dataset lives at ``<root>/<dataset-id>/`` where ``root`` is ``ATTNKIT_DATA_DIR`` or
``~/.cache/attnkit``. Files that are present are used as they are; missing files are downloaded from their
URL, verified against their sha256 and moved into place atomically (see :mod:`.download`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Dataset",
    "DatasetUnavailableError",
    "RemoteFile",
    "data_root",
    "dataset_dir",
    "fetch",
    "get_dataset",
    "register",
    "registered",
]

_REGISTRY: dict[str, Dataset] = {}


class DatasetUnavailableError(RuntimeError):
    """A dataset file is missing and could not be downloaded."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    Args:
        path: path relative to the dataset folder, with ``/`` separators.
        url: where a networked machine downloads it from (``None``: must be placed by hand).
        sha256: hex digest of the downloaded file (``None``: not verified).
        size: size in bytes, for listings and progress bars.
        extracted: glob patterns (relative to the dataset folder) of what the file unpacks to; when every
            pattern matches a file, the archive counts as present even if it was deleted after extraction.
    """

    path: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    extracted: tuple[str, ...] = ()

    def present(self, folder: Path) -> bool:
        """Whether the file, or everything it unpacks to (:attr:`extracted`), is in ``folder``."""
        if (folder / self.path).is_file():
            return True
        return bool(self.extracted) and all(
            any(p.is_file() for p in folder.glob(pattern)) for pattern in self.extracted
        )


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
    """

    id: str
    description: str
    files: tuple[RemoteFile, ...] = field(default_factory=tuple)
    licence: str = "unknown"
    citation: str = ""
    homepage: str = ""

    @property
    def size(self) -> int | None:
        """Total size in bytes, when every file's size is known."""
        sizes = [f.size for f in self.files]
        return None if not sizes or any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    def missing(self, root: str | os.PathLike[str] | None = None) -> list[RemoteFile]:
        """Files not present under the data root (an archive counts as present when it is extracted)."""
        d = dataset_dir(self.id, root)
        return [f for f in self.files if not f.present(d)]


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
    for f in wanted:
        target = d / f.path
        if f.present(d):
            continue
        if f.url is None:
            raise DatasetUnavailableError(
                f"{target} is missing and dataset {dataset_id!r} has no download URL for {f.path}.\n"
                f"Place the file there by hand (licence: {ds.licence}; see {ds.homepage or 'the dataset docs'})."
            )
        download(f.url, target, sha256=f.sha256, size=f.size, progress=progress)
    return d
