"""The registry's download path against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from attnkit.core.data import Dataset, DatasetUnavailableError, RemoteFile, fetch, register

PAYLOAD = bytes(range(256)) * 400  # 100 KiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/good.bin":
            self._send(PAYLOAD, len(PAYLOAD))
        elif self.path == "/corrupt.bin":
            bad = bytearray(PAYLOAD)
            bad[1000] ^= 0xFF
            self._send(bytes(bad), len(bad))
        elif self.path == "/cut.bin":
            # Announce the full length but close the connection halfway.
            self._send(PAYLOAD[: len(PAYLOAD) // 2], len(PAYLOAD))
            self.close_connection = True
        else:
            self.send_error(404, "Not Found")

    def _send(self, body: bytes, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _register(name: str, url: str, sha: str | None = SHA) -> str:
    register(Dataset(id=f"test-{name}", description="test", licence="test",
                     files=(RemoteFile("sub/file.bin", url, sha, len(PAYLOAD)),)), replace=True)
    return f"test-{name}"


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_correct_download_is_verified_and_placed(server: str, tmp_path: Path) -> None:
    ds = _register("good", f"{server}/good.bin")
    folder = fetch(ds, root=tmp_path, progress=False)
    target = folder / "sub" / "file.bin"
    assert target.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path) == [target]  # no temporary file left behind
    # Present files are used without downloading again (the URL is now unreachable).
    register(Dataset(id=ds, description="test", licence="test",
                     files=(RemoteFile("sub/file.bin", f"{server}/gone.bin", SHA),)), replace=True)
    assert fetch(ds, root=tmp_path, progress=False) == folder


def test_corrupted_download_is_removed_and_reported(server: str, tmp_path: Path) -> None:
    ds = _register("corrupt", f"{server}/corrupt.bin")
    with pytest.raises(DatasetUnavailableError, match="checksum mismatch") as info:
        fetch(ds, root=tmp_path, progress=False)
    msg = str(info.value)
    assert SHA in msg and hashlib.sha256(b"").hexdigest() not in msg
    assert "expected sha256" in msg and "got " in msg
    assert _leftovers(tmp_path) == []


def test_cut_off_transfer_is_removed_and_reported(server: str, tmp_path: Path) -> None:
    ds = _register("cut", f"{server}/cut.bin")
    with pytest.raises(DatasetUnavailableError, match=r"cut off|download") as info:
        fetch(ds, root=tmp_path, progress=False)
    assert "file.bin" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_missing_file_404_names_url_path_and_checksum(server: str, tmp_path: Path) -> None:
    ds = _register("missing", f"{server}/nope.bin")
    with pytest.raises(DatasetUnavailableError, match="HTTP 404") as info:
        fetch(ds, root=tmp_path, progress=False)
    msg = str(info.value)
    assert f"{server}/nope.bin" in msg
    assert str(tmp_path / ds / "sub" / "file.bin") in msg
    assert SHA in msg and "by hand" in msg
    assert _leftovers(tmp_path) == []


def test_offline_error_says_how_to_place_the_file(tmp_path: Path) -> None:
    # Nothing listens on port 9 of 127.0.0.1: the same failure as an offline machine.
    ds = _register("offline", "http://127.0.0.1:9/file.bin")
    with pytest.raises(DatasetUnavailableError, match="offline") as info:
        fetch(ds, root=tmp_path, progress=False)
    assert "http://127.0.0.1:9/file.bin" in str(info.value) and "by hand" in str(info.value)


def test_env_var_sets_the_root(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTNKIT_DATA_DIR", str(tmp_path / "elsewhere"))
    ds = _register("env", f"{server}/good.bin")
    assert fetch(ds, progress=False) == tmp_path / "elsewhere" / ds


def test_unknown_dataset_lists_registered() -> None:
    with pytest.raises(KeyError, match="attnkit datasets"):
        fetch("no-such-dataset")
