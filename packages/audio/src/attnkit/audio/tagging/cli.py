"""``attnkit-audio tag FILE_OR_DIR``: top tags per file from a trained tagger, and attention heat maps.

With ``--json`` standard output is one JSON document, whatever happens (also when the checkpoint is
missing or a file is unreadable); every message goes to standard error::

    {"checkpoint": "...", "chunk_seconds": 10.0,
     "files": [{"path": "a.flac", "seconds": 31.2, "chunks": 4, "padded": false,
                "tags": {"instrument:strings": 0.91, ...},
                "heatmap": {"path": "a_attention.png", "seconds": 31.2, "truncated": false}}],
     "skipped": [{"path": "broken.wav", "error": "..."}],
     "error": null}
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_CKPT = "runs/tagging-scores/checkpoints/best.ckpt"
DEFAULT_HEATMAP_SECONDS = 60.0


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; pass seconds >= 0 (0: the whole file)")
    return value


def add_tag_parser(sub: Any) -> None:
    """Register the ``tag`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "tag",
        help="print the top tags of music files (song-level: chunk predictions averaged)",
        description="Tag audio files with a model trained by `attnkit fit -c tagging-scores` "
        "(or tagging-mtat).",
    )
    p.add_argument("path", help="an audio file or a folder (searched recursively)")
    p.add_argument(
        "--ckpt", "--checkpoint", default=DEFAULT_CKPT,
        help=f"checkpoint of a MusicTaggingTask run (default {DEFAULT_CKPT})"
    )
    p.add_argument("-k", "--top-k", type=int, default=5, help="tags to print per file")
    p.add_argument(
        "--chunk-seconds", type=float, default=None, help="chunk length (default: the training chunk)"
    )
    p.add_argument(
        "--heatmap",
        metavar="DIR_OR_PNG",
        default=None,
        help="also write the class-token attention heat map (PNG per file; attention models only)",
    )
    p.add_argument(
        "--heatmap-seconds",
        type=_non_negative,
        default=DEFAULT_HEATMAP_SECONDS,
        help=f"heat map of the first SECONDS of each file (default {DEFAULT_HEATMAP_SECONDS:g}; 0: the whole "
        "file); a shortened map is reported",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (files, tags, heat maps, skipped files) instead of text",
    )
    p.set_defaults(func=run_tag)


def run_tag(args: argparse.Namespace) -> int:
    """Run ``attnkit-audio tag``; returns the exit status (1 when some file could not be tagged, 2 on errors)."""
    report: dict[str, Any] = {
        "checkpoint": str(args.ckpt),
        "chunk_seconds": None,
        "files": [],
        "skipped": [],
        "error": None,
    }
    if not args.json:
        return _tag(args, report, print)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # anything printed on the way is a message, not output
            status = _tag(args, report, None)
    except BaseException as e:  # the JSON document still comes out, with the error in it
        report["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        print(json.dumps(report, indent=2))
    return status


def _fail(report: dict[str, Any], message: str) -> int:
    report["error"] = message
    print(f"attnkit-audio tag: {message}", file=sys.stderr)
    return 2


def _tag(args: argparse.Namespace, report: dict[str, Any], emit: Callable[[str], None] | None) -> int:
    """Tag the files; fill ``report``; write text lines through ``emit`` (``None``: JSON mode)."""
    from attnkit.audio.io import AudioFileError, list_audio_files
    from attnkit.audio.tagging.heatmap import predict_file, save_heatmap
    from attnkit.audio.tagging.task import load_tagger

    try:
        model, tags, trained_chunk = load_tagger(args.ckpt)
    except (FileNotFoundError, ValueError) as e:
        return _fail(report, str(e))
    chunk = args.chunk_seconds or trained_chunk or 10.0
    report["chunk_seconds"] = chunk
    target = Path(args.path)
    if target.is_dir():
        files = list_audio_files(target)
        if not files:
            return _fail(report, f"no audio files under {target}")
    elif target.exists():
        files = [target]
    else:
        return _fail(report, f"{target}: no such file or folder")
    status = 0
    for f in files:
        try:
            pred = predict_file(model, f, chunk)
        except AudioFileError as e:
            print(f"attnkit-audio tag: skipping {e}", file=sys.stderr)
            report["skipped"].append({"path": str(f), "error": str(e)})
            status = 1
            continue
        top = pred.top(tags, args.top_k)
        entry: dict[str, Any] = {
            "path": str(f),
            "seconds": round(pred.seconds, 2),
            "chunks": int(pred.chunk_probs.shape[0]),
            "padded": pred.padded,
            "tags": {t: round(p, 4) for t, p in top},
        }
        report["files"].append(entry)
        if emit is not None:
            note = f" (shorter than the {chunk:g} s chunk: padded with silence)" if pred.padded else ""
            emit(f"{f}  [{pred.seconds:.1f} s, {pred.chunk_probs.shape[0]} chunks]{note}")
            for t, p in top:
                emit(f"  {p:.3f}  {t}")
        if args.heatmap:
            h = Path(args.heatmap)
            out = h if h.suffix.lower() == ".png" and len(files) == 1 else h / f"{f.stem}_attention.png"
            limit = args.heatmap_seconds or None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    save_heatmap(model, f, out, chunk, tags, max_seconds=limit, prediction=pred)
            except TypeError as e:
                return _fail(report, f"no heat map: {e}")
            truncated = limit is not None and pred.seconds > limit
            shown = min(pred.seconds, limit) if limit is not None else pred.seconds
            entry["heatmap"] = {"path": str(out), "seconds": round(shown, 2), "truncated": truncated}
            cut = (
                f" (first {limit:g} s of {pred.seconds:.1f} s; --heatmap-seconds 0 for the whole file)"
                if truncated
                else ""
            )
            if emit is not None:
                emit(f"  heat map: {out}{cut}")
            elif truncated:
                print(f"attnkit-audio tag: heat map of {f}{cut}", file=sys.stderr)
    return status
