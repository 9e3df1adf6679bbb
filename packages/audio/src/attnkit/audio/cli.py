"""The ``attnkit-audio`` command: ``quality`` (NISQA) and ``tag`` (music tagging)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per audio application."""
    from attnkit.audio.quality.cli import add_quality_parser
    from attnkit.audio.tagging.cli import add_tag_parser

    parser = argparse.ArgumentParser(prog="attnkit-audio", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_quality_parser(sub)
    add_tag_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``attnkit-audio``; each sub-parser sets ``func(args) -> int``."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
