"""``attnkit-audio quality FILE_OR_DIR [--csv out.csv]``: NISQA speech quality of audio files."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_quality_parser", "run_quality"]


def add_quality_parser(sub: Any) -> None:
    """Register the ``quality`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "quality",
        help="predict speech quality (NISQA: MOS, noisiness, discontinuity, coloration, loudness)",
        description="Predict speech quality with NISQA. Weights (CC BY-NC-SA 4.0) are not shipped: "
        "they are read from <ATTNKIT_DATA_DIR>/nisqa-weights/, from --weights, or "
        "downloaded with --download.",
    )
    p.add_argument("path", nargs="*", help="audio file(s) or folder(s) (searched recursively)")
    p.add_argument(
        "--input-csv",
        type=Path,
        default=None,
        help="a CSV listing the files to score (the original's --mode predict_csv); relative paths are "
        "relative to the CSV",
    )
    p.add_argument(
        "--input-column",
        default=None,
        help="the file column of --input-csv (default: filepath_deg, file, filepath, path, filename or deg)",
    )
    p.add_argument("--csv", type=Path, default=None, help="write the results to this CSV file")
    p.add_argument(
        "--model",
        default="nisqa",
        choices=["nisqa", "nisqa_mos_only", "nisqa_tts"],
        help="released checkpoint to use (default: nisqa = MOS + 4 dimensions)",
    )
    p.add_argument("--weights", "--checkpoint", type=Path, default=None,
                   help="checkpoint file (overrides --model): an original NISQA .tar or a .ckpt from `attnkit fit`")
    p.add_argument(
        "--download",
        action="store_true",
        help="download missing released weights from the authors (shows the licence)",
    )
    p.add_argument("--data-root", default=None, help="data root (default: ATTNKIT_DATA_DIR or ~/.cache/attnkit)")
    p.add_argument(
        "--channel",
        default="mean",
        help="multi-channel files: 'mean' (default: average the channels, as the original NISQA), 'error' or a "
        "channel index",
    )
    p.add_argument("--batch-size", type=int, default=16, help="files per forward pass")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="opt-in fast mode: run the network in bfloat16 (predictions move by < 0.01; needs a CPU with "
        "native bfloat16 or a GPU to be faster)",
    )
    p.add_argument(
        "--stop-on-error",
        action="store_true",
        help="stop at the first unreadable / too short / too long file (exit 2); by default such files are "
        "reported (stderr and an 'error' column in the CSV) and the others are scored (exit 1)",
    )
    p.add_argument("--skip-errors", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    p.set_defaults(func=run_quality)


def _channel(value: str) -> str | int:
    if value in ("error", "mean"):
        return value
    try:
        return int(value)
    except ValueError:
        raise SystemExit(
            f"attnkit-audio quality: --channel must be 'error', 'mean' or an integer, got {value!r}"
        ) from None


def run_quality(args: argparse.Namespace) -> int:
    """Run the ``quality`` command; exit status 0 ok, 1 some files failed, 2 stopped (bad input or setup)."""
    from attnkit.audio.io import AudioFileError, list_audio_files
    from attnkit.audio.quality.predict import QualityPrediction, SpeechQualityModel
    from attnkit.core.errors import UserError

    files: list[Path] = []
    if args.input_csv is not None:
        from attnkit.audio.quality.predict import read_file_list

        try:
            files.extend(read_file_list(args.input_csv, args.input_column))
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if not args.path and not files:
        print("error: give audio files or folders, or --input-csv FILE", file=sys.stderr)
        return 2
    for raw in args.path:
        p = Path(raw)
        if p.is_dir():
            found = list_audio_files(p)
            if not found:
                print(f"error: {p}: contains no audio files", file=sys.stderr)
                return 2
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            print(f"error: {p}: no such file or folder", file=sys.stderr)
            return 2
    opts: dict[str, Any] = {
        "channel": _channel(args.channel),
        "batch_size": args.batch_size,
        "precision": "bfloat16" if args.bf16 else "float32",
    }
    try:
        if args.weights is not None:
            model = SpeechQualityModel.from_checkpoint(args.weights, **opts)
        else:
            model = SpeechQualityModel.from_pretrained(args.model, root=args.data_root, download=args.download, **opts)
    except (UserError, FileNotFoundError, ValueError) as e:  # missing/unreadable weights, offline --download
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = list(model.output_names)
    rows: list[dict[str, Any]] = []
    failed = 0
    stopped: Exception | None = None
    try:
        for f, r in zip(files, model.iter_files(files, skip_errors=not args.stop_on_error), strict=True):
            if isinstance(r, QualityPrediction):
                row: dict[str, Any] = {  # full float precision (repr round-trips)
                    "file": str(f),
                    **{k: repr(float(v)) for k, v in r.scores.items()},
                    "duration_s": repr(float(r.duration_s)),
                    "sample_rate": r.sample_rate,
                    "warning": r.warning,
                    "error": "",
                }
                if r.warning:
                    print(f"warning: {r.warning}", file=sys.stderr)
            else:
                failed += 1
                row = {
                    "file": str(f),
                    **dict.fromkeys(names, ""),
                    "duration_s": "",
                    "sample_rate": "",
                    "warning": "",
                    "error": str(r),
                }
                print(f"error: {r}", file=sys.stderr)
            rows.append(row)
            if not row["error"]:
                print(f"{f}\t" + "\t".join(f"{k}={float(row[k]):.4f}" for k in names))
    except (AudioFileError, ValueError) as e:
        stopped = e
    if args.csv is not None:  # written also after --stop-on-error: the rows scored so far
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["file", *names, "duration_s", "sample_rate", "warning", "error"])
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {len(rows)} rows to {args.csv}", file=sys.stderr)
    if stopped is not None:
        print(f"error: {stopped}\n(stopped by --stop-on-error; without it bad files are reported and skipped)",
              file=sys.stderr)
        return 2
    if failed:
        print(f"{failed} of {len(files)} file(s) could not be scored (see the error column / messages above)",
              file=sys.stderr)
    return 1 if failed else 0
