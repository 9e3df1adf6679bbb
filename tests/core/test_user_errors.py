"""User errors at the library level: each is a UserError whose one-line message names the file/key and the fix."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import torch

from attnkit.core.checkpoint import AtomicCheckpointIO
from attnkit.core.data import Dataset, DatasetUnavailableError, RemoteFile, fetch, register
from attnkit.core.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    ConfigError,
    DataFormatError,
    DataNotFoundError,
    UserError,
)
from attnkit.core.io import load_checkpoint, load_yaml

SHA = hashlib.sha256(b"payload").hexdigest()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every URL fails as on a machine without network (name resolution fails)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def _one_line_user_error(err: BaseException) -> str:
    msg = str(err)
    assert isinstance(err, UserError)
    assert "\n" not in msg, msg
    # no chained tracebacks behind it (raised outside an except block, or `from None`)
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    return msg


def test_offline_dataset_names_id_path_url_and_sha256(offline: None, tmp_path: Path) -> None:
    register(Dataset(id="test-offline-one", description="t", files=(
        RemoteFile("sub/a.bin", "https://example.org/a.bin", SHA, 7),
        RemoteFile("b.bin", "https://example.org/b.bin", SHA, 7),
    )), replace=True)
    with pytest.raises(DatasetUnavailableError) as info:
        fetch("test-offline-one", root=tmp_path, progress=False)
    msg = _one_line_user_error(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, DataNotFoundError)
    assert "'test-offline-one'" in msg
    assert str(tmp_path / "test-offline-one" / "sub" / "a.bin") in msg
    assert "https://example.org/a.bin" in msg and SHA in msg
    assert "offline" in msg and "1 more file" in msg and "ATTNKIT_DATA_DIR" in msg


def test_offline_file_without_checksum_says_so(offline: None, tmp_path: Path) -> None:
    register(Dataset(id="test-offline-nosha", description="t",
                     files=(RemoteFile("a.bin", "https://example.org/a.bin"),)), replace=True)
    with pytest.raises(DatasetUnavailableError) as info:
        fetch("test-offline-nosha", root=tmp_path, progress=False)
    assert "no sha256 is registered" in _one_line_user_error(info.value)


def test_file_without_url_is_one_line(tmp_path: Path) -> None:
    register(Dataset(id="test-nourl", description="t", licence="L", homepage="https://h",
                     files=(RemoteFile("x.csv"),)), replace=True)
    with pytest.raises(DatasetUnavailableError) as info:
        fetch("test-nourl", root=tmp_path, progress=False)
    msg = _one_line_user_error(info.value)
    assert str(tmp_path / "test-nourl" / "x.csv") in msg and "by hand" in msg


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError) as info:
        load_checkpoint(tmp_path / "nope.ckpt")
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path / "nope.ckpt") in str(info.value) and "does not exist" in str(info.value)
    with pytest.raises(CheckpointNotFoundError, match="is a folder"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("cut", ["half", "tail", "empty", "junk"])
def test_truncated_or_foreign_checkpoint_names_the_file(tmp_path: Path, cut: str) -> None:
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.arange(1000.0)}}, good)
    data = good.read_bytes()
    bad = tmp_path / "bad.ckpt"
    cuts = {"half": data[: len(data) // 2], "tail": data[:-1000], "empty": b"", "junk": b"not a checkpoint"}
    bad.write_bytes(cuts[cut])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    msg = _one_line_user_error(info.value)
    assert msg.startswith(f"checkpoint {bad} is truncated or not a checkpoint file: ")
    assert f"({bad.stat().st_size} bytes)" in msg
    if cut == "half":
        assert "PytorchStreamReader" in msg
    assert torch.equal(load_checkpoint(good)["state_dict"]["w"], torch.arange(1000.0))


def test_checkpoint_with_objects_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "obj.ckpt"
    torch.save({"opt": torch.optim.SGD}, path)
    with pytest.raises(CheckpointError, match=r"holds Python objects .*Unsupported global") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_lightning_checkpoint_io_uses_the_helper(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    with pytest.raises(CheckpointNotFoundError, match=r"missing\.ckpt does not exist"):
        io.load_checkpoint(tmp_path / "missing.ckpt")
    io.save_checkpoint({"global_step": 3, "w": torch.ones(500)}, tmp_path / "a.ckpt")
    assert io.load_checkpoint(tmp_path / "a.ckpt")["global_step"] == 3
    data = (tmp_path / "a.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[:-200])
    with pytest.raises(CheckpointError, match=r"cut\.ckpt is truncated"):
        io.load_checkpoint(tmp_path / "cut.ckpt")


def test_malformed_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  class_path: X\n  init_args:\n    lr: [0.1, 0.2\ntrainer:\n  max_epochs: 2\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    msg = _one_line_user_error(info.value)
    line = int(msg.split(":")[1]) if msg.startswith(str(path)) else -1
    assert msg.startswith(f"{path}:") and 4 <= line <= 5, msg
    tab = tmp_path / "tab.yaml"
    tab.write_text("a: 1\n\tb: 2\n")
    with pytest.raises(ConfigError, match=rf"^{tab}:2:1: "):
        load_yaml(tab)
    ok = tmp_path / "ok.yaml"
    ok.write_text("a: [1, 2]\n")
    assert load_yaml(ok) == {"a": [1, 2]}
    with pytest.raises(DataNotFoundError, match=r"nope\.yaml does not exist"):
        load_yaml(tmp_path / "nope.yaml")


def test_domain_errors_are_user_errors() -> None:
    from attnkit.audio.io import AudioFileError
    from attnkit.audio.quality.convert import CheckpointError as NISQACheckpointError
    from attnkit.audio.tagging.formats import TagFileError
    from attnkit.vision.data.formats import ImageFormatError

    for cls in (AudioFileError, TagFileError, ImageFormatError):
        assert issubclass(cls, DataFormatError) and issubclass(cls, ValueError)
    assert issubclass(NISQACheckpointError, CheckpointError) and issubclass(NISQACheckpointError, ValueError)


def test_missing_interaction_file_names_the_key(tmp_path: Path) -> None:
    from attnkit.recsys import SequentialDataModule

    dm = SequentialDataModule(path=str(tmp_path / "nope.txt"))
    with pytest.raises(DataNotFoundError) as info:
        _ = dm.data
    msg = str(info.value)
    assert "\n" not in msg
    assert str(tmp_path / "nope.txt") in msg and "--data.path" in msg


def test_table_module_without_path_names_the_key() -> None:
    from attnkit.timeseries.data.tables import TableDataModule

    with pytest.raises(ConfigError, match=r"--data\.path"):
        TableDataModule()


def test_unreadable_data_file_names_file_and_line(tmp_path: Path) -> None:
    from attnkit.recsys.data.formats import read_sasrec_txt

    path = tmp_path / "bad.txt"
    path.write_text("1 2\n7\n")
    with pytest.raises(DataFormatError, match=rf"{path}:2: expected `user item`"):
        read_sasrec_txt(path)
    path.write_text("1 2\n1 x\n")
    with pytest.raises(DataFormatError, match=rf"{path}:2: 'x' is not an integer id"):
        read_sasrec_txt(path)


def test_combining_a_mask_with_none_says_so() -> None:
    from attnkit.core import CausalMask

    for combine in (lambda m: m & None, lambda m: None & m, lambda m: m | None, lambda m: None | m):
        with pytest.raises(TypeError, match="cannot combine a mask with None"):
            combine(CausalMask())
