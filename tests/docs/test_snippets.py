"""Every ```python block of README.md and docs/*.md runs as written.

Each block runs on its own in a fresh interpreter, in an empty temporary folder, offline, with an empty
data root. A block that needs real data or hardware is preceded by ``<!-- skip-snippet: reason -->``
(the line directly above the fence); use it sparingly.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT_S = 300
MAX_BYTES = 1 << 20
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_SKIP = re.compile(r"<!--\s*skip-snippet:\s*(.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Snippet:
    """One python block: where it is, its code, and the skip reason if it is marked."""

    file: Path
    line: int
    code: str
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def extract(path: Path) -> list[Snippet]:
    """The ```python blocks of a Markdown file, with the skip marker on the line above each fence."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(before)
        out.append(Snippet(path, text[: m.start()].count("\n") + 1, m.group(1), skip.group(1) if skip else None))
    return out


SNIPPETS = [s for doc in DOCS for s in extract(doc)]


def test_extraction_finds_blocks_and_markers(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text("text\n```python\na = 1\n```\n<!-- skip-snippet: needs a GPU -->\n```python\nb = 2\n```\n"
                  "```bash\nls\n```\n")
    found = extract(md)
    assert [(s.line, s.code, s.skip) for s in found] == [(2, "a = 1\n", None), (6, "b = 2\n", "needs a GPU")]
    assert len(SNIPPETS) >= 8


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_snippet_runs(snippet: Snippet, tmp_path: Path) -> None:
    if snippet.skip:
        pytest.skip(snippet.skip)
    script = tmp_path / "snippet.py"
    script.write_text(snippet.code, encoding="utf-8")
    (tmp_path / "data").mkdir()
    env = {**os.environ, "ATTNKIT_DATA_DIR": str(tmp_path / "data"), "ATTNKIT_CACHE_DIR": str(tmp_path / "cache"),
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": "",
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    log = tmp_path / "output.txt"
    with log.open("wb") as fh:
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, stdout=fh,
                              stderr=subprocess.STDOUT, timeout=TIMEOUT_S, check=False)
    with log.open("rb") as fh:
        output = fh.read(MAX_BYTES).decode(errors="replace")
    assert proc.returncode == 0, f"{snippet.id} failed:\n{output[-4000:]}"
