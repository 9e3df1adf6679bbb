"""NISQA inference speed: attnkit SpeechQualityModel vs torchmetrics' NISQA, same weights, same process.

Inputs: the 30 nisqa-reference wavs (8-48 kHz), each looped/cropped to ``--seconds`` so that torchmetrics can
batch equal-length signals per sample rate. Both sides start from in-memory float32 waveforms (file reading is
not timed) and produce MOS + 4 dimensions. Reported: seconds of compute per minute of audio (best of
``--repeats`` interleaved runs) and the ratio torchmetrics / attnkit, plus the max abs difference of outputs.

torchmetrics needs librosa (not in the attnkit lock): install it in a throwaway place, e.g.
``uv pip install --target /tmp/tm-extra --no-deps librosa numba llvmlite soxr lazy_loader audioread decorator
pooch msgpack platformdirs`` and run with ``PYTHONPATH=/tmp/tm-extra``. torchmetrics reads its weights from
``~/.torchmetrics/NISQA/nisqa.tar``; this script copies ``$ATTNKIT_DATA_DIR/nisqa-weights/nisqa.tar`` there.

    OMP_NUM_THREADS=2 PYTHONPATH=/tmp/tm-extra python benchmarks/nisqa_speed.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from collections import defaultdict
from pathlib import Path

import torch

from attnkit.audio.io import read_audio
from attnkit.audio.quality import NISQAFeatures, SpeechQualityModel
from attnkit.core.data import dataset_dir


def _loop(x: torch.Tensor, n: int) -> torch.Tensor:
    reps = -(-n // x.numel())
    return x.repeat(reps)[:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    weights = dataset_dir("nisqa-weights") / "nisqa.tar"
    tm_path = Path(os.path.expanduser("~/.torchmetrics/NISQA/nisqa.tar"))
    if not tm_path.is_file():
        tm_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, tm_path)
    from torchmetrics.functional.audio.nisqa import non_intrusive_speech_quality_assessment as tm_nisqa

    ref = dataset_dir("nisqa-reference") / "wavs"
    signals: list[tuple[str, torch.Tensor, int]] = []
    for f in sorted(ref.glob("*.wav")):
        x, sr = read_audio(f, channel="mean")
        signals.append((f.name, _loop(x, int(args.seconds * sr)), sr))
    minutes = sum(x.numel() / sr for _, x, sr in signals) / 60
    by_rate: dict[int, list[int]] = defaultdict(list)
    for i, (_, _, sr) in enumerate(signals):
        by_rate[sr].append(i)

    sqm64 = SpeechQualityModel.from_checkpoint(weights, batch_size=args.batch_size)
    sqm32 = SpeechQualityModel(sqm64.model, NISQAFeatures(stft_dtype=torch.float32), batch_size=args.batch_size)

    def ours_batched(sqm: SpeechQualityModel) -> torch.Tensor:
        preds = sqm.predict_batch([x for _, x, _ in signals], [sr for _, _, sr in signals])
        return torch.tensor([list(p.scores.values()) for p in preds])

    def ours_single() -> torch.Tensor:
        return torch.tensor([list(sqm64.predict(x, sr).scores.values()) for _, x, sr in signals])

    def tm_single() -> torch.Tensor:
        return torch.stack([tm_nisqa(x, sr) for _, x, sr in signals])

    def tm_batched() -> torch.Tensor:
        out = torch.zeros(len(signals), 5)
        for sr, idx in by_rate.items():
            for s in range(0, len(idx), args.batch_size):
                chunk = idx[s : s + args.batch_size]
                out[chunk] = tm_nisqa(torch.stack([signals[i][1] for i in chunk]), sr)
        return out

    runs = {
        "torchmetrics, one file per call": tm_single,
        "torchmetrics, batched per sample rate": tm_batched,
        "attnkit, one file per call (float64 STFT)": ours_single,
        "attnkit, batched (float64 STFT, default)": lambda: ours_batched(sqm64),
        "attnkit, batched (float32 STFT)": lambda: ours_batched(sqm32),
    }
    tm_single()  # warm-up: loads the weights and JIT-compiles librosa's numba kernels
    ours_batched(sqm64)
    best: dict[str, float] = {}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            t = time.perf_counter()
            with torch.inference_mode():
                outputs[name] = fn()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, {args.threads} threads; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"audio: {len(signals)} signals x {args.seconds:g} s = {minutes:.2f} min at 8-48 kHz; best of {args.repeats}")
    base = best["torchmetrics, batched per sample rate"]
    base1 = best["torchmetrics, one file per call"]
    print(f"{'run':45s} {'s / audio-min':>14s} {'vs tm batched':>14s} {'vs tm 1-file':>13s}")
    for name, t in best.items():
        print(f"{name:45s} {t / minutes:14.3f} {base / t:13.2f}x {base1 / t:12.2f}x")
    ref_out = outputs["torchmetrics, one file per call"]
    for name, out in outputs.items():
        print(f"max |{name} - torchmetrics 1-file| = {(out - ref_out).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
