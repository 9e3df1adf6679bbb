"""Fit and test every domain on tiny data with 1 or N processes; the DDP tests and gpu_check.sh run it.

``python ddp_domains.py DATA OUT --devices N [--domains a,b] [--ckpt-dir DIR] [--accelerator gpu]
[--precision bf16-mixed] [--make-data]`` runs, per domain:
``fit`` (recording a fingerprint of every training sample each rank reads, per epoch), then ``test`` on a
checkpoint (its own, or the one in ``--ckpt-dir`` written by a 1-process run). Rank 0 writes
``OUT/<domain>.json`` (global step, last validation and test metrics); every rank writes
``OUT/<domain>-samples-rank<r>.json``. ``make_data(DATA)`` (or ``--make-data``) writes the tiny datasets
first, once, before any process of a DDP run starts. Global batches are fixed per domain (``BATCH``); each
of N processes reads ``BATCH / N`` samples per step.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
DOMAINS = ("demo", "recsys", "timeseries", "vision", "quality", "tagging")
TINY_ENCODER = "tu-mobilenetv3_small_050"


def _conftest(domain: str) -> Any:
    """The fixture helpers of ``tests/<domain>/conftest.py`` (loaded by path: every conftest is `conftest`)."""
    spec = importlib.util.spec_from_file_location(f"_ddp_{domain}_conftest", HERE.parent / domain / "conftest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------------------------- tiny data
def make_data(root: Path) -> None:
    """Write every domain's tiny dataset under ``root`` (odd evaluation sizes, so padding would show)."""
    import soundfile as sf
    from PIL import Image

    from attnkit.audio.tagging.synthetic import write_tone_collection

    rec = _conftest("recsys")
    # 64 users, all with >= 3 actions: 64 training rows, 64 evaluated users; eval batch 9 gives uneven shares.
    rng = np.random.default_rng(0)
    seqs = [[(s + i - 1) % 40 + 1 for i in range(int(rng.integers(3, 10)))]
            for s in rng.integers(1, 41, size=63)]
    rec.write_sasrec(root / "recsys" / "seqs.txt", seqs)

    _conftest("timeseries").make_ett(root / "ett", n=600)

    vis = _conftest("vision")
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 3), ("test", 3)):
        for sub in ("images", "masks"):
            (root / "vision" / split / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, mask = vis.blobs(rng, 72, 80)
            Image.fromarray(img).save(root / "vision" / split / "images" / f"{i}.png")
            Image.fromarray(mask).save(root / "vision" / split / "masks" / f"{i}.png")

    # quality: 32 training files, 5 validation, 7 test (split column), tone bursts with noise = lower score
    q = root / "quality"
    (q / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = ["path,mos,split"]
    for i in range(44):
        split = "TRAIN" if i < 32 else "VAL" if i < 37 else "TEST"
        noise = float(rng.uniform(0, 0.3))
        t = np.arange(int(16000 * 1.2)) / 16000
        x = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 300) * t) + noise * rng.standard_normal(t.size)
        sf.write(q / "audio" / f"{i}.wav", x.astype(np.float32), 16000)
        lines.append(f"audio/{i}.wav,{4.5 - 10 * noise:.3f},{split}")
    (q / "scores.csv").write_text("\n".join(lines) + "\n")

    # tagging: clips exactly one chunk long, so the training crop is the whole clip (deterministic samples)
    write_tone_collection(root / "tagging" / "tagging-scores", (16, 5, 7), seconds=1.0)


# ---------------------------------------------------------------------------------------------- domains
def _demo(data: Path, batch: int) -> tuple[Any, Any, Callable[[Any], list[bytes]]]:
    from attnkit.core.tasks.sequence_classification import (
        SequenceClassificationTask,
        SequenceClassifier,
        SyntheticSequenceDataModule,
    )

    dm = SyntheticSequenceDataModule(num_samples=260, seq_len=16, batch_size=batch, seed=0)
    task = SequenceClassificationTask(SequenceClassifier(vocab_size=32, num_classes=4, embed_dim=16, num_heads=2,
                                                         num_layers=1, dropout=0.0), num_classes=4)
    return task, dm, lambda b: [t.cpu().numpy().tobytes() for t in b[0]]


def _recsys(data: Path, batch: int) -> tuple[Any, Any, Callable[[Any], list[bytes]]]:
    from attnkit.recsys import NextItemTask, SASRec, SequentialDataModule

    dm = SequentialDataModule(path=str(data / "recsys" / "seqs.txt"), format="sasrec", max_len=8,
                              batch_size=batch, eval_batch_size=9, num_eval_negatives=10, seed=0)
    model = SASRec(dm.num_items, embed_dim=16, num_heads=1, num_layers=1, max_len=8, dropout=0.0)
    task = NextItemTask(model, optimizer=lambda p: torch.optim.Adam(p, lr=5e-3))
    return task, dm, lambda b: [int(u).to_bytes(8, "little") for u in b["user"]]


def _timeseries(data: Path, batch: int) -> tuple[Any, Any, Callable[[Any], list[bytes]]]:
    from attnkit.timeseries import SAITS, ETTDataModule, ImputationTask

    dm = ETTDataModule(root=str(data), num_steps=16, stride=4, batch_size=batch)
    dm.setup("fit")
    model = SAITS(dm.num_features, dm.num_steps, num_layers=1, embed_dim=16, num_heads=2, head_dim=8,
                  ffn_dim=16, dropout=0.0)
    task = ImputationTask(model, optimizer=lambda p: torch.optim.Adam(p, lr=3e-3))
    return task, dm, lambda b: [o.cpu().numpy().tobytes() for o in b["origin"]]


def _vision(data: Path, batch: int) -> tuple[Any, Any, Callable[[Any], list[bytes]]]:
    import segmentation_models_pytorch as smp

    from attnkit.vision import FolderSegmentationDataModule, SegmentationTask

    dm = FolderSegmentationDataModule(
        root=str(data / "vision"), val_images="val/images", val_masks="val/masks", test_images="test/images",
        test_masks="test/masks", patch_size=64, samples_per_epoch=8, batch_size=batch, degrees=10.0,
    )
    net = smp.Unet(TINY_ENCODER, encoder_weights=None, classes=2, decoder_channels=(16, 16, 8, 8, 8))
    task = SegmentationTask(net, patch_size=64, optimizer=lambda p: torch.optim.Adam(p, lr=3e-3))
    return task, dm, lambda b: [hashlib.sha1(x.cpu().numpy().tobytes()).digest() for x in b["image"]]


def _quality(data: Path, batch: int) -> tuple[Any, Any, Callable[[Any], list[bytes]]]:
    from attnkit.audio import NISQA, SpeechQualityDataModule, SpeechQualityTask

    dm = SpeechQualityDataModule(dataset=None, csv_file=str(data / "quality" / "scores.csv"), path_column="path",
                                 score_columns=["mos"], split_column="split", train_splits=["TRAIN"],
                                 val_splits=["VAL"], test_splits=["TEST"], sample_rate=16000, batch_size=batch)
    task = SpeechQualityTask(NISQA(("mos",), dropout=0.0), optimizer=lambda p: torch.optim.Adam(p, 1e-3))

    def keys(b: dict[str, torch.Tensor]) -> list[bytes]:
        # float16: the dataset caches features in half precision after a file's first read (per process)
        pairs = zip(b["segments"], b["lengths"], strict=True)
        return [hashlib.sha1(s[:n].half().cpu().numpy().tobytes()).digest() for s, n in pairs]

    return task, dm, keys


def _tagging(data: Path, batch: int) -> tuple[Any, Any, Callable[[Any], list[bytes]]]:
    from attnkit.audio import MusicTaggingDataModule, MusicTaggingTask, SelfAttentionTagger

    dm = MusicTaggingDataModule(dataset="tagging-scores", root=str(data / "tagging"), chunk_seconds=1.0,
                                batch_size=batch, eval_batch_size=2)
    dm.setup("fit")
    model = SelfAttentionTagger(len(dm.tag_names), n_mels=32, channels=(8, 8, 16), num_time_pool=2,
                                embed_dim=16, num_heads=2, num_layers=1, dropout=0.0, attn_dropout=0.0,
                                head_dropout=0.0)
    task = MusicTaggingTask(model, tags=list(dm.tag_names), optimizer=lambda p: torch.optim.Adam(p, 1e-3))
    return task, dm, lambda b: [hashlib.sha1(w.cpu().numpy().tobytes()).digest() for w in b[0]]


BUILD: dict[str, Callable[[Path, int], tuple[Any, Any, Callable[[Any], list[bytes]]]]] = {
    "demo": _demo, "recsys": _recsys, "timeseries": _timeseries, "vision": _vision, "quality": _quality,
    "tagging": _tagging,
}
#: global training batch per domain (divisible by 2)
BATCH = {"demo": 32, "recsys": 16, "timeseries": 16, "vision": 4, "quality": 8, "tagging": 4}
EPOCHS = {"demo": 2, "recsys": 2, "timeseries": 2, "vision": 2, "quality": 2, "tagging": 2}


# ---------------------------------------------------------------------------------------------- running
def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


def run(domain: str, data: Path, out: Path, devices: int, ckpt_dir: Path | None, accelerator: str = "cpu",
        precision: str = "32-true") -> None:
    """Fit then test one domain; see the module docstring for what is written."""
    import lightning.pytorch as pl

    class Record(pl.Callback):
        """Fingerprints of the training samples this rank reads, per epoch."""

        def __init__(self, key: Callable[[Any], list[bytes]]) -> None:
            self.key = key
            self.seen: dict[int, list[str]] = {}

        def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                                 batch_idx: int) -> None:
            self.seen.setdefault(trainer.current_epoch, []).extend(k.hex() for k in self.key(batch))

    pl.seed_everything(0, verbose=False)
    task, dm, key = BUILD[domain](data, BATCH[domain] // devices)
    record = Record(key)
    common: dict[str, Any] = {
        "accelerator": accelerator, "devices": devices, "precision": precision, "logger": False,
        "enable_progress_bar": False, "enable_model_summary": False, "default_root_dir": str(out),
    }
    if devices > 1:
        common["strategy"] = "ddp"
    trainer = pl.Trainer(max_epochs=EPOCHS[domain], enable_checkpointing=False, callbacks=[record], **common)
    trainer.fit(task, dm)
    val = _floats({k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")})
    rank = trainer.global_rank
    (out / f"{domain}-samples-rank{rank}.json").write_text(json.dumps(record.seen))
    ckpt = out / f"{domain}.ckpt"
    if ckpt_dir is None:
        trainer.save_checkpoint(ckpt)
    else:
        ckpt = ckpt_dir / f"{domain}.ckpt"
    tester = pl.Trainer(**common)
    tested = tester.test(task, dm, ckpt_path=str(ckpt), verbose=False)
    if rank == 0:
        result = {"global_step": trainer.global_step, "val": val, "test": _floats(tested[0])}
        (out / f"{domain}.json").write_text(json.dumps(result))


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("data", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--domains", default=",".join(DOMAINS))
    p.add_argument("--ckpt-dir", type=Path, default=None)
    p.add_argument("--accelerator", default="cpu", help="cpu or gpu (benchmarks/gpu_check.sh)")
    p.add_argument("--precision", default="32-true", help="e.g. bf16-mixed on a GPU")
    p.add_argument("--make-data", action="store_true", help="write the tiny datasets into DATA first")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    a.out.mkdir(parents=True, exist_ok=True)
    if a.make_data:
        make_data(a.data)
    done = [d for d in a.domains.split(",") if d]
    try:
        for domain in done:
            run(domain, a.data, a.out, a.devices, a.ckpt_dir, a.accelerator, a.precision)
    finally:
        # what attnkit's CLI does on exit: a gloo group left to interpreter exit aborted this script once (SIGABRT,
        # "terminate called without an active exception") after every domain had written its results
        from attnkit.core.cli import _close_process_group

        _close_process_group()
    if done and int(os.environ.get("LOCAL_RANK", "0")) == 0:
        print(f"NOTE fit + test of {len(done)} domains on {a.devices} {a.accelerator} device(s), {a.precision}")


if __name__ == "__main__":
    sys.exit(main())
