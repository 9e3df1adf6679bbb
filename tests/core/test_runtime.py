"""configure_threads: precedence of --threads, ATTNKIT_NUM_THREADS, OMP_NUM_THREADS and the default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from attnkit.core import runtime
from attnkit.core.errors import ConfigError
from attnkit.core.runtime import configure_threads, default_threads


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    before = torch.get_num_threads()
    monkeypatch.delenv("ATTNKIT_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield
    torch.set_num_threads(before)


def test_explicit_count_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTNKIT_NUM_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert configure_threads(2) == 2 == torch.get_num_threads()


def test_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTNKIT_NUM_THREADS", "3")
    assert configure_threads() == 3 == torch.get_num_threads()


def test_omp_num_threads_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(runtime, "available_cpus", lambda: 1)  # the default would be 1
    assert configure_threads() == 2


@pytest.mark.parametrize(("cpus", "expected"), [(1, 1), (2, 1), (3, None), (16, None)])
def test_default_depends_on_available_cpus(monkeypatch: pytest.MonkeyPatch, cpus: int, expected: int | None) -> None:
    monkeypatch.setattr(runtime, "available_cpus", lambda: cpus)
    assert default_threads() == expected
    torch.set_num_threads(3)
    assert configure_threads() == (3 if expected is None else expected)


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("ATTNKIT_NUM_THREADS", bad)
    with pytest.raises(ConfigError, match="ATTNKIT_NUM_THREADS"):
        configure_threads()
    with pytest.raises(ConfigError, match="--threads"):
        configure_threads(0)
