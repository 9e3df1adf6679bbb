"""Every packaged recsys config runs through the attnkit CLI on tiny data in the real formats."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest

from attnkit.core.cli import main

from .conftest import make_sequences

CONFIGS = ["sasrec-games", "sasrec-games-fast", "sasrec-beauty", "sasrec-ml1m"]


@pytest.fixture
def all_root(tiny_root: Path) -> Path:
    d = tiny_root / "ml-1m"
    d.mkdir()
    lines = [f"{u}::{i * 7}::4::{t}" for u, s in enumerate(make_sequences(), 1) for t, i in enumerate(s)]
    with zipfile.ZipFile(d / "ml-1m.zip", "w") as z:
        z.writestr("ml-1m/ratings.dat", "\n".join(lines) + "\n")
    return tiny_root


@pytest.mark.parametrize("name", CONFIGS)
def test_config_fit_test_predict(name: str, all_root: Path) -> None:
    small = ["--data.root", str(all_root), "--model.model.init_args.embed_dim", "8"]
    main(["fit", "-c", name, *small, "--trainer.fast_dev_run=true"])
    main(["test", "-c", name, *small, "--trainer.fast_dev_run=true"])
    main(["predict", "-c", name, *small, "--trainer.fast_dev_run=true"])
    rows = list(csv.DictReader(next(Path("runs", name).rglob("predictions.csv")).open()))
    assert rows and set(rows[0]) == {"user", "rank", "item", "score"}
