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


@pytest.mark.parametrize(("precision", "native", "warns"), [
    ("bf16-mixed", False, True), ("bf16-true", False, True), ("bf16-mixed", True, False), ("32-true", False, False),
])
def test_bf16_on_a_cpu_without_bf16_instructions_warns(precision: str, native: bool, warns: bool,
                                                        monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """bf16 emulated in software ran SAITS 17x slower than float32 on an AVX2 CPU: the run says so."""
    import warnings

    from lightning.pytorch import Trainer

    from attnkit.core.tasks import Task
    from attnkit.core.tasks.sequence_classification import (
        SequenceClassificationTask,
        SequenceClassifier,
        SyntheticSequenceDataModule,
    )

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(Task, "_precision_warned", False)
    task = SequenceClassificationTask(SequenceClassifier(vocab_size=32, num_classes=4))
    trainer = Trainer(accelerator="cpu", precision=precision, fast_dev_run=1, logger=False,  # type: ignore[arg-type]
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(task, SyntheticSequenceDataModule(num_samples=64, batch_size=16))
    said = [str(w.message) for w in caught if "bfloat16 instructions" in str(w.message)]
    assert len(said) == (1 if warns else 0), said
    if warns:
        assert "--trainer.precision 32-true" in said[0] and precision in said[0]


def test_native_bf16_check_reads_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert runtime.cpu_has_native_bf16() is False
    assert "32-true" in (runtime.slow_precision_warning("bf16-mixed", on_cpu=True) or "")
    assert runtime.slow_precision_warning("bf16-mixed", on_cpu=False) is None
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert runtime.cpu_has_native_bf16() is True
    assert runtime.slow_precision_warning("bf16-mixed", on_cpu=True) is None


def test_every_task_that_overrides_setup_calls_the_base() -> None:
    """Task.setup gives the bf16 warning; a domain task's own setup must not swallow it."""
    import importlib
    import inspect

    from attnkit.core.tasks import Task

    for module in ("attnkit.audio.quality.task", "attnkit.audio.tagging.task", "attnkit.recsys.tasks.next_item",
                   "attnkit.timeseries.tasks.imputation", "attnkit.vision.tasks.segmentation"):
        importlib.import_module(module)
    tasks, todo = [], list(Task.__subclasses__())
    while todo:
        cls = todo.pop()
        tasks.append(cls)
        todo += cls.__subclasses__()
    names = {cls.__name__ for cls in tasks}
    assert {"ImputationTask", "SegmentationTask", "SequenceClassificationTask"} <= names, names
    for cls in tasks:
        if "setup" in vars(cls):
            assert "super().setup(stage)" in inspect.getsource(vars(cls)["setup"]), cls
