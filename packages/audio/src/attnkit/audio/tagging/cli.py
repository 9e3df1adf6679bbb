"""``attnkit-audio tag``."""

from __future__ import annotations

import argparse
from typing import Any


def add_tag_parser(sub: Any) -> None:
    """Register the ``tag`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("tag", help="tag music files")
    p.add_argument("path")
    p.set_defaults(func=lambda a: (_ for _ in ()).throw(NotImplementedError("tag: not built yet")))
