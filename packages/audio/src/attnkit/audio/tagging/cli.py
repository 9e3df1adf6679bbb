"""``attnkit-audio tag FILE_OR_DIR``: top tags per file from a trained tagger, and attention heat maps."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

DEFAULT_CKPT = "runs/tagging-scores/checkpoints/best.ckpt"


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
        "--ckpt", default=DEFAULT_CKPT, help=f"checkpoint of a MusicTaggingTask run (default {DEFAULT_CKPT})"
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
    p.add_argument("--json", action="store_true", help="one JSON object per file instead of text")
    p.set_defaults(func=run_tag)


def run_tag(args: argparse.Namespace) -> int:
    """Run ``attnkit-audio tag``; returns the exit status (1 when some file could not be tagged)."""
    from attnkit.audio.io import AudioFileError, list_audio_files
    from attnkit.audio.tagging.heatmap import predict_file, save_heatmap
    from attnkit.audio.tagging.task import load_tagger

    try:
        model, tags, trained_chunk = load_tagger(args.ckpt)
    except (FileNotFoundError, ValueError) as e:
        print(f"attnkit-audio tag: {e}", file=sys.stderr)
        return 2
    chunk = args.chunk_seconds or trained_chunk or 10.0
    target = Path(args.path)
    if target.is_dir():
        files = list_audio_files(target)
        if not files:
            print(f"attnkit-audio tag: no audio files under {target}", file=sys.stderr)
            return 2
    elif target.exists():
        files = [target]
    else:
        print(f"attnkit-audio tag: {target}: no such file or folder", file=sys.stderr)
        return 2
    status = 0
    for f in files:
        try:
            pred = predict_file(model, f, chunk)
        except AudioFileError as e:
            print(f"attnkit-audio tag: skipping {e}", file=sys.stderr)
            status = 1
            continue
        top = pred.top(tags, args.top_k)
        note = f" (shorter than the {chunk:g} s chunk: padded with silence)" if pred.padded else ""
        if args.json:
            print(
                json.dumps(
                    {
                        "path": str(f),
                        "seconds": round(pred.seconds, 2),
                        "padded": pred.padded,
                        "tags": {t: round(p, 4) for t, p in top},
                    }
                )
            )
        else:
            print(f"{f}  [{pred.seconds:.1f} s, {pred.chunk_probs.shape[0]} chunks]{note}")
            for t, p in top:
                print(f"  {p:.3f}  {t}")
        if args.heatmap:
            h = Path(args.heatmap)
            out = h if h.suffix.lower() == ".png" and len(files) == 1 else h / f"{f.stem}_attention.png"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    save_heatmap(model, f, out, chunk, tags)
            except TypeError as e:
                print(f"attnkit-audio tag: no heat map: {e}", file=sys.stderr)
                return 2
            print(f"  heat map: {out}")
    return status
