"""Registered tagging datasets: MagnaTagATune and the score-rendered dataset built offline."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

from attnkit.core.data import Dataset, RemoteFile, register

__all__ = ["MTAT", "TAGGING_SCORES", "extract_mtat"]

_MTAT_URL = "https://mirg.city.ac.uk/datasets/magnatagatune/"
_MTAT_FOLDERS = tuple(f"{d}/*.mp3" for d in "0123456789abcdef")

MTAT = register(
    Dataset(
        id="mtat",
        description="MagnaTagATune: 25,863 29-s MP3 clips with 188 tags (top-50 benchmark, split by folder)",
        # No sha256: the MTAT site publishes none and no verified copy was at hand (docs/datasets.md).
        # The three zip parts extract together into the clip folders 0-f.
        files=(
            RemoteFile("annotations_final.csv", _MTAT_URL + "annotations_final.csv"),
            *(RemoteFile(f"mp3.zip.00{n}", f"{_MTAT_URL}mp3.zip.00{n}", extracted=_MTAT_FOLDERS) for n in (1, 2, 3)),
        ),
        licence="CC BY-NC-SA 3.0 (Magnatune audio; annotations from the TagATune game)",
        citation="Law, West, Mandel, Bay, Downie. Evaluation of algorithms using games: the case of music "
        "tagging. ISMIR 2009",
        homepage="https://mirg.city.ac.uk/codeapps/the-magnatagatune-dataset",
    )
)

TAGGING_SCORES = register(
    Dataset(
        id="tagging-scores",
        description="music21 corpus scores rendered with FluidSynth, tagged from score metadata "
        "(built offline: "
        "python -m attnkit.audio.tagging.scores $ATTNKIT_DATA_DIR/tagging-scores)",
        files=(RemoteFile("tags.csv"),),
        licence="music21 corpus (BSD/LGPL; scores public domain or as noted in music21); "
        "FluidR3 GM soundfont (MIT)",
        citation="Cuthbert & Ariza, music21: a toolkit for computer-aided musicology, ISMIR 2010",
        homepage="https://www.music21.org/music21docs/about/referenceCorpus.html",
    )
)


def extract_mtat(root: str | Path) -> bool:
    """Extract the split archive ``mp3.zip.001-003`` into the clip folders ``0``-``f`` when they are missing.

    Returns:
        True when something was extracted.

    """
    root = Path(root)
    parts = sorted(root.glob("mp3.zip.0*"))
    if not parts or all((root / d).is_dir() for d in "0123456789abcdef"):
        return False
    joined = root / "mp3.zip"
    print(f"attnkit: extracting the MagnaTagATune clips from {', '.join(p.name for p in parts)} into "
          f"{root}/0 ... {root}/f (about 3 GB, several minutes; once)", file=sys.stderr)
    if not joined.is_file():
        tmp = root / "mp3.zip.part"
        with tmp.open("wb") as out:
            for p in parts:
                out.write(p.read_bytes())
        tmp.replace(joined)
    with zipfile.ZipFile(joined) as z:
        z.extractall(root)
    return True
