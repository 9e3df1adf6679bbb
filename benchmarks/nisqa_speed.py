"""NISQA inference speed: attnkit SpeechQualityModel vs torchmetrics' NISQA, same weights, same process.

Inputs: the 30 nisqa-reference wavs (8-48 kHz), each looped/cropped to ``--seconds`` so that torchmetrics can
batch equal-length signals per sample rate. Both sides start from in-memory float32 waveforms (file reading is
not timed) and produce MOS + 4 dimensions. Reported per run: wall-clock and process CPU seconds per minute of
audio (each the best of ``--repeats`` interleaved runs), the ratio torchmetrics batched / run for both, and
the max abs difference of outputs. On a shared machine the CPU-time ratio at ``--threads 1`` is the steadier
figure (other processes stretch wall time, much less the CPU time of a single-threaded process).

Runs: torchmetrics (one file per call; batched per sample rate), attnkit's default (float32 STFT, fused
eval-mode CNN), attnkit's reference path (float64 STFT as the original, unfused CNN: the code before the
speed work), and the opt-in bfloat16 mode.

torchmetrics needs librosa (not in the attnkit lock): install it in a throwaway place, e.g.
``uv pip install --target /tmp/tm-extra --no-deps librosa numba llvmlite soxr lazy_loader audioread decorator
pooch msgpack platformdirs`` and run with ``PYTHONPATH=/tmp/tm-extra``. torchmetrics reads its weights from
``~/.torchmetrics/NISQA/nisqa.tar``; this script copies ``$ATTNKIT_DATA_DIR/nisqa-weights/nisqa.tar`` there.

    OMP_NUM_THREADS=1 PYTHONPATH=/tmp/tm-extra python benchmarks/nisqa_speed.py --threads 1
"""

from __future__ import annotations

import argparse
import copy
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

    sqm = SpeechQualityModel.from_checkpoint(weights, batch_size=args.batch_size)
    ref_model = copy.deepcopy(sqm.model)
    ref_model.cnn.fused = False
    sqm_ref = SpeechQualityModel(ref_model, NISQAFeatures(stft_dtype=torch.float64), batch_size=args.batch_size)
    sqm_bf16 = SpeechQualityModel(sqm.model, sqm.features, batch_size=args.batch_size, precision="bfloat16")

    def ours_batched(sqm: SpeechQualityModel) -> torch.Tensor:
        preds = sqm.predict_batch([x for _, x, _ in signals], [sr for _, _, sr in signals])
        return torch.tensor([list(p.scores.values()) for p in preds])

    def ours_single() -> torch.Tensor:
        return torch.tensor([list(sqm.predict(x, sr).scores.values()) for _, x, sr in signals])

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
        "attnkit, one file per call": ours_single,
        "attnkit, batched (default)": lambda: ours_batched(sqm),
        "attnkit, batched, reference path": lambda: ours_batched(sqm_ref),
        "attnkit, batched, bfloat16 (opt-in)": lambda: ours_batched(sqm_bf16),
    }
    tm_single()  # warm-up: loads the weights and JIT-compiles librosa's numba kernels
    ours_batched(sqm)
    loads = [os.getloadavg()[0]]
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            t, c = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                outputs[name] = fn()
            wall[name] = min(wall.get(name, float("inf")), time.perf_counter() - t)
            cpu[name] = min(cpu.get(name, float("inf")), time.process_time() - c)
        loads.append(os.getloadavg()[0])

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, {args.threads} threads; 1-min load average during the runs "
        f"{min(loads):.1f}-{max(loads):.1f}"
    )
    print(f"audio: {len(signals)} signals x {args.seconds:g} s = {minutes:.2f} min at 8-48 kHz; best of {args.repeats}")
    key = "torchmetrics, batched per sample rate"
    print(f"{'run':40s} {'wall s/min':>10s} {'x vs tm':>8s} {'CPU s/min':>10s} {'x vs tm':>8s}")
    for name in runs:
        print(
            f"{name:40s} {wall[name] / minutes:10.3f} {wall[key] / wall[name]:7.2f}x "
            f"{cpu[name] / minutes:10.3f} {cpu[key] / cpu[name]:7.2f}x"
        )
    ref_out = outputs["torchmetrics, one file per call"]
    for name, out in outputs.items():
        print(f"max |{name} - torchmetrics 1-file| = {(out - ref_out).abs().max().item():.2e}")
    bf = (outputs["attnkit, batched, bfloat16 (opt-in)"] - outputs["attnkit, batched (default)"]).abs().max()
    print(f"max |bfloat16 - default| = {bf.item():.2e}")


if __name__ == "__main__":
    main()
