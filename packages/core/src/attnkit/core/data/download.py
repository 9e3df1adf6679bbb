"""Verified downloads: progress bar, sha256, temporary file and atomic rename."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from attnkit.core.data.registry import DatasetUnavailableError

__all__ = ["download", "sha256sum"]

_CHUNK = 1 << 20


def sha256sum(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _by_hand(url: str, target: Path, sha256: str | None) -> str:
    check = (f"sha256 {sha256}" if sha256
             else "no sha256 is registered for it: attnkit found no published checksum it could verify")
    return (
        f"To place it by hand, download it on a networked machine and copy it to {target} ({check}), "
        "or set ATTNKIT_DATA_DIR to a data root that already holds it."
    )


def download(
    url: str,
    target: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``target`` atomically.

    The bytes go to a temporary file beside ``target``; only a complete file whose sha256 matches is
    renamed into place. Anything else removes the temporary file and raises.

    Raises:
        DatasetUnavailableError: network failure, HTTP error, truncated transfer or checksum mismatch.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        received = 0
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "attnkit"})
            with urllib.request.urlopen(req, timeout=timeout) as resp, os.fdopen(fd, "wb") as out:
                fd = -1
                expected = resp.headers.get("Content-Length")
                total = int(expected) if expected is not None else size
                bar = None
                if progress:
                    from tqdm.auto import tqdm

                    bar = tqdm(total=total, unit="B", unit_scale=True, desc=target.name, leave=False)
                try:
                    while True:
                        block = resp.read(_CHUNK)
                        if not block:
                            break
                        out.write(block)
                        h.update(block)
                        received += len(block)
                        if bar is not None:
                            bar.update(len(block))
                finally:
                    if bar is not None:
                        bar.close()
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as e:
            raise DatasetUnavailableError(
                f"download of {url} failed: HTTP {e.code} {e.reason}. " + _by_hand(url, target, sha256)
            ) from None
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise DatasetUnavailableError(
                f"cannot download {url} ({reason}); this machine may be offline. " + _by_hand(url, target, sha256)
            ) from None
        if expected is not None and received != int(expected):
            raise DatasetUnavailableError(
                f"download of {url} was cut off: received {received} of {expected} bytes; the partial file "
                f"was removed. Retry, or place the file by hand. " + _by_hand(url, target, sha256)
            )
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256.lower():
            raise DatasetUnavailableError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest} ({received} bytes); "
                f"the partial file was removed and {target} was not written. " + _by_hand(url, target, sha256)
            )
        os.replace(tmp, target)
        return target
    finally:
        if fd != -1:
            os.close(fd)
        if tmp.exists():
            tmp.unlink()
