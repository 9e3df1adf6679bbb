"""Tiny recsys fixtures in the real file formats (made in tmp dirs, never at import time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def make_sequences(num_users: int = 40, num_items: int = 30, seed: int = 0) -> list[list[int]]:
    """Users whose next item tends to be ``previous + 1`` (learnable), lengths 1..12."""
    rng = np.random.default_rng(seed)
    seqs = []
    for u in range(num_users):
        n = 1 if u == 0 else 2 if u == 1 else int(rng.integers(3, 13))
        start = int(rng.integers(1, num_items + 1))
        seqs.append([(start + i - 1) % num_items + 1 for i in range(n)])
    return seqs


def write_sasrec(path: Path, seqs: list[list[int]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{u} {i}\n" for u, s in enumerate(seqs, 1) for i in s))
    return path


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """A data root holding tiny sasrec-games and s3rec-beauty files in the authors' formats."""
    root = tmp_path / "data"
    seqs = make_sequences()
    write_sasrec(root / "sasrec-games" / "Video.txt", seqs)
    (root / "s3rec-beauty").mkdir(parents=True)
    (root / "s3rec-beauty" / "Beauty.txt").write_text(
        "".join(f"{u} " + " ".join(map(str, s)) + "\n" for u, s in enumerate(seqs, 1))
    )
    return root
