"""Training throughput per domain with 1 and 2 CPU processes (DDP), same global batch, 1 thread each.

Usage::

    ATTNKIT_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/scaling.py [--reps 2] [--domains ...]

The parent writes the generated corpora once (simulated speech quality, tone tagging clips) into a
temporary folder, then launches this script as a worker alternately with 1 and 2 processes (1, 2, 1, 2,
...: interleaved, so load from other users hits both alike). A worker trains every domain for a few
warm-up steps plus ``timed`` steps on the real data (paper-sized models from the packaged configs) and
reports training samples/s over the timed steps: ``global batch x timed steps / seconds``. With 2
processes each one reads ``global batch / 2`` samples per step (Lightning's DistributedSampler, or the
vision PatchSampler) and gradients are averaged by DDP (gloo on CPU). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# domain -> (global batch, timed steps)
PLAN: dict[str, tuple[int, int]] = {
    "recsys": (128, 30), "timeseries": (64, 30), "vision": (4, 4), "quality": (16, 8), "tagging": (16, 6),
}
WARMUP = 2


def _recsys(batch: int, work: Path) -> tuple[Any, Any]:
    from attnkit.recsys import NextItemTask, SASRec, SequentialDataModule

    dm = SequentialDataModule("sasrec-games", max_len=50, batch_size=batch)
    model = SASRec(dm.num_items, embed_dim=50, num_heads=1, num_layers=2, max_len=50, dropout=0.5)
    return NextItemTask(model, loss="bce"), dm


def _timeseries(batch: int, work: Path) -> tuple[Any, Any]:
    from attnkit.timeseries import SAITS, ETTDataModule, ImputationTask

    dm = ETTDataModule(name="ETTh1", num_steps=24, stride=12, batch_size=batch)
    dm.setup("fit")
    model = SAITS(dm.num_features, 24, num_layers=2, embed_dim=256, num_heads=4, head_dim=64, value_head_dim=64,
                  ffn_dim=128, dropout=0.1)
    return ImputationTask(model), dm


def _vision(batch: int, work: Path) -> tuple[Any, Any]:
    from attnkit.vision import MoNuSegDataModule, SegmentationTask, UTransformer

    dm = MoNuSegDataModule(patch_size=256, samples_per_epoch=512, batch_size=batch, colour_jitter=0.1)
    model = UTransformer("resnet34", encoder_weights=None, num_classes=2, num_heads=8, gate_heads=1)
    return SegmentationTask(model, patch_size=256), dm


def _quality(batch: int, work: Path) -> tuple[Any, Any]:
    from attnkit.audio import NISQA, SimulatedQualityDataModule, SpeechQualityTask

    dm = SimulatedQualityDataModule(root=str(work), clean_dir=_clean_speech(), num_clips=240, batch_size=batch)
    model = NISQA(dm.score_columns, embed_dim=64, num_heads=1, num_layers=2, dropout=0.1)
    return SpeechQualityTask(model), dm


def _tagging(batch: int, work: Path) -> tuple[Any, Any]:
    from attnkit.audio import MusicTaggingDataModule, MusicTaggingTask, SelfAttentionTagger

    dm = MusicTaggingDataModule(dataset="tagging-scores", root=str(work), chunk_seconds=10.0, batch_size=batch)
    dm.setup("fit")
    model = SelfAttentionTagger(len(dm.tag_names), n_mels=96, channels=(32, 32, 64, 64, 64), num_time_pool=3,
                                embed_dim=64, num_heads=4, num_layers=2, dropout=0.1, attn_dropout=0.1,
                                head_dropout=0.3)
    return MusicTaggingTask(model, tags=list(dm.tag_names)), dm


BUILD: dict[str, Callable[[int, Path], tuple[Any, Any]]] = {
    "recsys": _recsys, "timeseries": _timeseries, "vision": _vision, "quality": _quality, "tagging": _tagging,
}


def _clean_speech() -> str:
    from attnkit.core.data import dataset_dir

    return str(dataset_dir("clean-speech"))


def prepare(work: Path, domains: list[str]) -> None:
    """Write the generated corpora once, before any worker starts (workers only read them)."""
    if "quality" in domains:
        from attnkit.audio import SimulatedQualityDataModule

        SimulatedQualityDataModule(root=str(work), clean_dir=_clean_speech(), num_clips=240).prepare_data()
    if "tagging" in domains:
        from attnkit.audio.tagging.synthetic import write_tone_collection

        write_tone_collection(work / "tagging-scores", (64, 8, 8), seconds=10.0)


def worker(devices: int, domains: list[str], work: Path, out: Path) -> None:
    """Train each domain for ``WARMUP + timed`` steps; rank 0 appends ``{domain: samples/s}`` to ``out``."""
    import lightning.pytorch as pl

    class Clock(pl.Callback):
        def __init__(self) -> None:
            self.start = self.end = 0.0

        def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
            if trainer.global_step == WARMUP:
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
            self.end = time.perf_counter()

    torch.set_num_threads(1)
    result: dict[str, float] = {}
    for domain in domains:
        batch, timed = PLAN[domain]
        pl.seed_everything(0, verbose=False)
        task, dm = BUILD[domain](batch // devices, work)
        clock = Clock()
        trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                             max_steps=WARMUP + timed, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[clock])
        trainer.fit(task, dm)
        result[domain] = batch * timed / (clock.end - clock.start)
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        with out.open("a") as f:
            f.write(json.dumps({"devices": devices, **result}) + "\n")


def main() -> None:
    """Run the interleaved workers and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--domains", default=",".join(PLAN))
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    domains = a.domains.split(",")
    if a.worker:
        worker(a.worker, domains, a.work, a.out)
        return
    with tempfile.TemporaryDirectory(prefix="attnkit-scaling-") as tmp:
        work, out = Path(tmp), Path(tmp) / "results.jsonl"
        prepare(work, domains)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        for rep in range(a.reps):
            for devices in (1, 2):
                print(f"rep {rep + 1}/{a.reps}, {devices} process(es); load average {os.getloadavg()}", flush=True)
                cmd = [sys.executable, __file__, "--worker", str(devices), "--domains", a.domains,
                       "--work", str(work), "--out", str(out)]
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr[-4000:])
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
          f"load average after the run {os.getloadavg()}")
    print("| domain | global batch | 1 process samples/s | 2 processes samples/s | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for d in domains:
        one = statistics.median(r[d] for r in rows if r["devices"] == 1)
        two = statistics.median(r[d] for r in rows if r["devices"] == 2)
        print(f"| {d} | {PLAN[d][0]} | {one:.1f} | {two:.1f} | {two / one:.2f}x |")
    print("\nper run:", json.dumps(rows))


if __name__ == "__main__":
    main()
