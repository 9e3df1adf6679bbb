"""Where a data module's interactions come from: a registered id, a file or folder, or a name under the data root."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Literal

from attnkit.core.data import data_root, fetch
from attnkit.recsys.data.registry import DATASET_FILES

__all__ = ["DATA_SUFFIXES", "Format", "resolve_dataset", "sniff_format"]

Format = Literal["auto", "sasrec", "user_sequences", "movielens", "table"]

#: Suffixes of files that can hold interactions (a dataset folder must contain exactly one).
DATA_SUFFIXES = frozenset({".txt", ".csv", ".tsv", ".parquet", ".dat", ".data", ".inter", ".gz"})


def sniff_format(path: Path) -> Format:
    """Guess a file's format: tables by suffix, MovieLens by name, text files by their first 1,000 lines.

    A text line with more than two fields means ``user item item ...`` (one user per line), otherwise
    ``user item`` pairs (the SASRec format).
    """
    name = path.name.lower()
    suffix = path.suffix.lower()
    if suffix in {".csv", ".tsv", ".parquet"} or name.endswith((".csv.gz", ".tsv.gz")):
        return "table"
    if suffix in {".dat", ".data"} or name == "u.data":
        return "movielens"
    with path.open(errors="replace") as f:
        for _, line in zip(range(1000), f, strict=False):
            if len(line.split()) > 2:
                return "user_sequences"
    return "sasrec"


def _data_files(folder: Path) -> list[Path]:
    """Interaction files in ``folder`` (not recursive): known suffixes, no negatives/README/LICENSE files."""
    out = []
    for p in sorted(folder.iterdir()):
        low = p.name.lower()
        if (not p.is_file() or low.startswith((".", "readme", "license", "licence"))
                or low.endswith("_sample.txt") or p.suffix.lower() not in DATA_SUFFIXES):
            continue
        out.append(p)
    return out


def _from_folder(folder: Path, name: str) -> Path:
    files = _data_files(folder)
    if len(files) == 1:
        return files[0]
    listing = ", ".join(p.name for p in sorted(folder.iterdir())) or "nothing"
    if not files:
        raise FileNotFoundError(
            f"dataset {name!r}: {folder} holds no interaction file ({', '.join(sorted(DATA_SUFFIXES))}); it "
            f"contains: {listing}. Put one file there, or pass data.dataset the file's path"
        )
    raise ValueError(
        f"dataset {name!r}: {folder} holds {len(files)} interaction files ({', '.join(p.name for p in files)}); "
        "keep one there, or pass data.dataset the path of the file to use"
    )


def _extract(d: Path, archive: str, member: str, dataset: str) -> Path:
    out = d / member
    if out.is_file():
        return out
    try:
        with zipfile.ZipFile(d / archive) as z:
            z.extract(member, d)
    except OSError:  # read-only data folder: extract to a temporary folder instead
        tmp = Path(tempfile.mkdtemp(prefix=f"attnkit-{dataset}-"))
        with zipfile.ZipFile(d / archive) as z:
            z.extract(member, tmp)
        out = tmp / member
    return out


def resolve_dataset(dataset: str, root: str | None = None) -> tuple[Path, Format | None]:
    """Find the interaction file of ``dataset``.

    Tried in order: a registered id (``sasrec-games``, ...: downloaded where the network allows, archives
    extracted), an existing file or folder path, a folder ``<data root>/<dataset>/`` holding exactly one
    interaction file (``<data root>`` is ``root`` or ``$ATTNKIT_DATA_DIR``).

    Returns:
        ``(file, format)``: the registered format, or ``None`` (to be sniffed) for other files.

    Raises:
        FileNotFoundError: nothing by that name (lists the registered ids and the data root's folders).
        ValueError: a folder with several interaction files.

    """
    if dataset in DATASET_FILES:
        name, member, fmt = DATASET_FILES[dataset]
        d = fetch(dataset, root=root)
        return (d / name if member is None else _extract(d, name, member, dataset)), fmt  # type: ignore[return-value]
    p = Path(dataset).expanduser()
    if p.is_file():
        return p, None
    if p.is_dir():
        return _from_folder(p, dataset), None
    base = data_root(root)
    if "/" not in dataset and (base / dataset).is_dir():
        return _from_folder(base / dataset, dataset), None
    found = sorted(q.name for q in base.iterdir() if q.is_dir()) if base.is_dir() else []
    raise FileNotFoundError(
        f"dataset {dataset!r} is not registered ({', '.join(sorted(DATASET_FILES))}), not a file or folder, and "
        f"{base / dataset} does not exist (folders under the data root {base}: {', '.join(found) or 'none'}). "
        "Pass a file path, or put the file in <data root>/<name>/ (ATTNKIT_DATA_DIR sets the data root)"
    )
