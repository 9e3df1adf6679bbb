"""Dataset registry, cache directory and verified downloads."""

from attnkit.core.data.download import download, sha256sum
from attnkit.core.data.registry import (
    Dataset,
    DatasetState,
    DatasetUnavailableError,
    RemoteFile,
    cache_dir,
    data_root,
    dataset_dir,
    fetch,
    get_dataset,
    register,
    registered,
)

__all__ = [
    "Dataset",
    "DatasetState",
    "DatasetUnavailableError",
    "RemoteFile",
    "cache_dir",
    "data_root",
    "dataset_dir",
    "download",
    "fetch",
    "get_dataset",
    "register",
    "registered",
    "sha256sum",
]
