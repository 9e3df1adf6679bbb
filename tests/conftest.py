"""Shared test configuration: markers for GPU and real-data tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# Test helpers shared across folders (``from bounded_subprocess import run_bounded``); --import-mode=importlib does
# not put tests/ on the path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Resolve a relative ATTNKIT_DATA_DIR once, before tests change directory.
if os.environ.get("ATTNKIT_DATA_DIR"):
    os.environ["ATTNKIT_DATA_DIR"] = str(Path(os.environ["ATTNKIT_DATA_DIR"]).resolve())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)
        # Tests that read the real datasets are `data` tests, so `-m "not data"` deselects them.
        if "real_data_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.data)


@pytest.fixture
def real_data_dir() -> Path:
    """The real datasets (``ATTNKIT_DATA_DIR``); skips the test when it is not set (CI sets it)."""
    root = os.environ.get("ATTNKIT_DATA_DIR")
    if not root or not Path(root).is_dir():
        pytest.skip("ATTNKIT_DATA_DIR is not set to a folder with the real datasets")
    return Path(root)


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in its own working directory so run folders never collide.

    Generated and processed data (``ATTNKIT_CACHE_DIR``) goes below it too, unless the environment names
    a cache folder (to reuse processed real datasets).
    """
    monkeypatch.chdir(tmp_path)
    if not os.environ.get("ATTNKIT_CACHE_DIR"):
        monkeypatch.setenv("ATTNKIT_CACHE_DIR", str(tmp_path / "attnkit-cache"))
