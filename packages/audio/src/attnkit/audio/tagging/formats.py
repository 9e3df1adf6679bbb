"""Readers for tagged audio collections.

MagnaTagATune's real layout, a CSV of files and tags, a folder of per-tag sub-folders.

Every reader returns :class:`TaggedClip` records; :func:`read_collection` picks the reader for a path.
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from attnkit.core.errors import DataFormatError

__all__ = [
    "MTAT_TOP50",
    "TagFileError",
    "TaggedClip",
    "apply_vocabulary",
    "read_collection",
    "read_folder",
    "read_mtat",
    "read_tag_csv",
    "top_tags",
]

#: The 50 most frequent MagnaTagATune tags, in the order of the standard top-50 benchmark (Lee et al.'s
#: split, also used by Won et al. and musicnn), spelt as the columns of ``annotations_final.csv``
#: (Lee's ``top50_tags.txt`` writes multi-word tags in camel case: ``noVocals`` = ``no vocals``).
MTAT_TOP50: tuple[str, ...] = (
    "guitar",
    "classical",
    "slow",
    "techno",
    "strings",
    "drums",
    "electronic",
    "rock",
    "fast",
    "piano",
    "ambient",
    "beat",
    "violin",
    "vocal",
    "synth",
    "female",
    "indian",
    "opera",
    "male",
    "singing",
    "vocals",
    "no vocals",
    "harpsichord",
    "loud",
    "quiet",
    "flute",
    "woman",
    "male vocal",
    "no vocal",
    "pop",
    "soft",
    "sitar",
    "solo",
    "man",
    "classic",
    "choir",
    "voice",
    "new age",
    "dance",
    "male voice",
    "female vocal",
    "beats",
    "harp",
    "cello",
    "no voice",
    "weird",
    "country",
    "female voice",
    "metal",
    "choral",
)

Split = Literal["train", "val", "test"]
EmptyTags = Literal["keep", "drop", "error"]
UnknownTags = Literal["error", "ignore"]


class TagFileError(DataFormatError):
    """A tag file cannot be used; the message names the file, the problem and the fix."""


@dataclass(frozen=True)
class TaggedClip:
    """One audio file with its tags.

    Attributes:
        path: the audio file.
        tags: its tags (may be empty: a clip negative for every tag).
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` (to be assigned).
        clip_id: an identifier (MTAT ``clip_id``, or the relative path).

    """

    path: Path
    tags: tuple[str, ...]
    split: str | None
    clip_id: str


def _hash_split(key: str) -> str:
    h = int(hashlib.sha1(key.encode()).hexdigest(), 16) % 10
    return "train" if h < 7 else ("val" if h == 7 else "test")


def read_mtat(root: str | Path, annotations: str = "annotations_final.csv") -> list[TaggedClip]:
    """MagnaTagATune in its released layout.

    ``annotations_final.csv`` is tab-separated with quoted fields: ``clip_id``, 188 tag columns of 0/1 and
    ``mp3_path`` (``<folder>/<name>.mp3`` with folders ``0``-``9``, ``a``-``f``). The split is by folder, as
    in
    Won et al. and musicnn: ``0``-``b`` train, ``c`` validation, ``d``-``f`` test. All tags with a 1 are
    returned; restrict them to the top 50 with :func:`apply_vocabulary` and :data:`MTAT_TOP50`.

    Args:
        root: the dataset folder holding the annotations and the clip folders.
        annotations: file name of the annotations.

    Raises:
        TagFileError: missing file, missing ``clip_id``/``mp3_path`` column, non 0/1 values.

    """
    root = Path(root)
    f = root / annotations
    if not f.is_file():
        raise TagFileError(
            f"{f}: MagnaTagATune annotations not found; expected {annotations} (tab-separated) in "
            f"{root} next to the clip folders 0-f (download: https://mirg.city.ac.uk/codeapps/"
            "the-magnatagatune-dataset)"
        )
    with f.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    if not rows:
        raise TagFileError(f"{f}: the file is empty")
    header = [h.strip() for h in rows[0]]
    if "clip_id" not in header or "mp3_path" not in header:
        sep = "comma" if "," in rows[0][0] else "other"
        raise TagFileError(
            f"{f}: header must contain 'clip_id' and 'mp3_path' (tab-separated), got "
            f"{header[:3]}...; the file looks {sep}-separated. Use the original annotations_final.csv"
        )
    i_id, i_path = header.index("clip_id"), header.index("mp3_path")
    tag_cols = [(i, h) for i, h in enumerate(header) if i not in (i_id, i_path)]
    if len(tag_cols) != 188:
        warnings.warn(f"{f}: {len(tag_cols)} tag columns (the release has 188)", stacklevel=2)
    clips = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise TagFileError(f"{f}:{n}: {len(row)} fields, the header has {len(header)}")
        rel = row[i_path].strip()
        if not rel:
            continue
        folder = rel.split("/", 1)[0].lower()
        split = "train" if folder in "0123456789ab" else ("val" if folder == "c" else "test")
        if len(folder) != 1 or folder not in "0123456789abcdef":
            raise TagFileError(f"{f}:{n}: mp3_path {rel!r} is not in a folder 0-f as in the release")
        tags = []
        for i, name in tag_cols:
            v = row[i].strip()
            if v == "1":
                tags.append(name)
            elif v != "0":
                raise TagFileError(f"{f}:{n}: tag {name!r} has value {v!r}; expected 0 or 1")
        clips.append(TaggedClip(root / rel, tuple(tags), split, row[i_id].strip()))
    return clips


def read_tag_csv(csv_path: str | Path, tag_sep: str = ";") -> list[TaggedClip]:
    """Read a CSV of audio files and tags.

    Columns: ``path``, ``tags`` (joined by ``tag_sep``) and optional ``split``.

    Paths are relative to the CSV's folder (or absolute). Without a ``split`` column, clips are split
    70/10/20 by a hash of their path.

    Raises:
        TagFileError: missing file or columns, bad split names, duplicate paths.

    """
    f = Path(csv_path)
    if not f.is_file():
        raise TagFileError(f"{f}: no such tag file")
    with f.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in reader.fieldnames or []]
        if "path" not in cols or "tags" not in cols:
            raise TagFileError(
                f"{f}: needs columns 'path' and 'tags' (optional 'split'), got {cols}. Example:\n"
                "path,tags,split\nsongs/a.wav,piano;slow,train"
            )
        clips, seen = [], set()
        for n, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            rel = row["path"]
            if not rel:
                raise TagFileError(f"{f}:{n}: empty path")
            if rel in seen:
                raise TagFileError(
                    f"{f}:{n}: {rel!r} is listed twice; give each file one row with all its tags"
                )
            seen.add(rel)
            tags = tuple(dict.fromkeys(t.strip() for t in row["tags"].split(tag_sep) if t.strip()))
            split = row.get("split") or None
            if split is not None and split not in ("train", "val", "test"):
                raise TagFileError(f"{f}:{n}: split {split!r}; use train, val or test")
            p = Path(rel) if Path(rel).is_absolute() else f.parent / rel
            clips.append(TaggedClip(p, tags, split or _hash_split(rel), rel))
    return clips


def read_folder(root: str | Path) -> list[TaggedClip]:
    """Read a folder with one sub-folder per tag (``root/piano/a.wav``): one tag per file, split by hash.

    Raises:
        TagFileError: no sub-folders with audio files.

    """
    from attnkit.audio.io import AUDIO_EXTENSIONS

    root = Path(root)
    if not root.is_dir():
        raise TagFileError(f"{root}: no such folder")
    clips = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for p in sorted(sub.rglob("*")):
            if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS:
                rel = str(p.relative_to(root))
                clips.append(TaggedClip(p, (sub.name,), _hash_split(rel), rel))
    if not clips:
        raise TagFileError(
            f"{root}: no audio files in per-tag sub-folders (expected {root}/<tag>/<file>.wav), and "
            "no annotations_final.csv (MagnaTagATune) or tags.csv (path,tags[,split])"
        )
    return clips


def read_collection(
    path: str | Path, fmt: Literal["auto", "mtat", "csv", "folder"] = "auto"
) -> list[TaggedClip]:
    """Read a tagged collection.

    Formats: ``mtat`` (annotations_final.csv), ``csv`` (a tags CSV or a folder with
    ``tags.csv``), ``folder`` (per-tag sub-folders); ``auto`` picks by what is there.
    """
    p = Path(path)
    if fmt == "auto":
        if p.is_file() and p.suffix.lower() in (".csv", ".tsv"):
            fmt = "mtat" if p.name == "annotations_final.csv" else "csv"
        elif (p / "annotations_final.csv").is_file():
            fmt = "mtat"
        elif (p / "tags.csv").is_file():
            fmt = "csv"
        elif p.is_dir():
            fmt = "folder"
        else:
            raise TagFileError(f"{p}: no such file or folder")
    if fmt == "mtat":
        return read_mtat(p.parent, p.name) if p.is_file() else read_mtat(p)
    if fmt == "csv":
        return read_tag_csv(p if p.is_file() else p / "tags.csv")
    return read_folder(p)


def top_tags(clips: Sequence[TaggedClip], k: int | None = None, min_count: int = 1) -> list[str]:
    """Rank the training clips' tags by frequency (ties by name).

    Keeps tags with at least ``min_count`` positives, at most ``k`` of them.
    """
    counts: dict[str, int] = {}
    for c in clips:
        if c.split == "train":
            for t in c.tags:
                counts[t] = counts.get(t, 0) + 1
    ranked = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
    return ranked[:k] if k else ranked


def apply_vocabulary(
    clips: Sequence[TaggedClip],
    vocabulary: Sequence[str],
    *,
    unknown: UnknownTags = "ignore",
    empty: EmptyTags = "keep",
    source: str = "tag file",
) -> list[TaggedClip]:
    """Restrict clips' tags to ``vocabulary``; handle tags outside it and clips left with no tag.

    Args:
        clips: as read.
        vocabulary: the tags the model predicts.
        unknown: ``"error"`` raises when a clip has a tag outside the vocabulary (a typo guard for
            hand-written tag files); ``"ignore"`` drops such tags (what the MTAT top-50 protocol does).
        empty: clips with no tag in the vocabulary: ``"keep"`` (negative for every tag, as the MTAT
            top-50 protocol of musicnn/Won et al. does), ``"drop"``, or ``"error"``. A warning gives the
            count.
        source: named in messages.

    Raises:
        TagFileError: unknown tags with ``unknown="error"``, empty tag sets with ``empty="error"``.

    """
    vocab = set(vocabulary)
    if not vocab:
        raise TagFileError(
            f"{source}: the tag vocabulary is empty; the training clips have no tags "
            "(or min_tag_count is too high)"
        )
    out: list[TaggedClip] = []
    n_empty = 0
    unknown_seen: dict[str, str] = {}
    for c in clips:
        bad = [t for t in c.tags if t not in vocab]
        for t in bad:
            unknown_seen.setdefault(t, c.clip_id)
        kept = tuple(t for t in c.tags if t in vocab)
        if not kept:
            n_empty += 1
            if empty == "drop":
                continue
            if empty == "error":
                raise TagFileError(
                    f"{source}: clip {c.clip_id!r} has no tag in the vocabulary (tags: "
                    f"{list(c.tags)}); pass empty_tags='keep' to use it as a negative for every "
                    "tag or 'drop' to leave it out"
                )
        out.append(TaggedClip(c.path, kept, c.split, c.clip_id))
    if unknown_seen and unknown == "error":
        shown = ", ".join(f"{t!r} (e.g. {cid!r})" for t, cid in list(unknown_seen.items())[:5])
        raise TagFileError(
            f"{source}: {len(unknown_seen)} tag(s) not in the vocabulary: {shown}. Fix the spelling, "
            "add them to `tags`, or pass unknown_tags='ignore' to drop them"
        )
    if n_empty:
        what = "dropped" if empty == "drop" else "kept as negatives for every tag"
        warnings.warn(
            f"{source}: {n_empty} of {len(clips)} clips have no tag in the vocabulary; {what}", stacklevel=2
        )
    return out
