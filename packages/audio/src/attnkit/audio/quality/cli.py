"""``attnkit-audio quality``."""

from __future__ import annotations

import argparse
from typing import Any


def add_quality_parser(sub: Any) -> None:
    """Register the ``quality`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("quality", help="predict speech quality (NISQA)")
    p.add_argument("path")
    p.set_defaults(func=lambda a: (_ for _ in ()).throw(NotImplementedError("quality: not built yet")))
