"""Song-level test evaluation of trained tagging checkpoints on one dataset, with inference timing.

For each checkpoint: macro ROC-AUC / PR-AUC over tags (chunks averaged per song), the per-tag table, and the
inference time per minute of test audio (decoding excluded). Optionally waits for training processes first
(the import is paid while they run).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tagging_eval.py --root $ATTNKIT_DATA_DIR \
        runs/tagging-scores/checkpoints/best.ckpt runs/tagging-scores-cnn/checkpoints/best.ckpt
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from attnkit.audio.tagging import MusicTaggingDataModule, TagAUC, load_tagger
from attnkit.audio.tagging.data import load_clip, song_chunks
from attnkit.audio.tagging.metrics import format_tag_table


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("ckpts", nargs="+")
    p.add_argument("--dataset", default="tagging-scores")
    p.add_argument("--root", default=None)
    p.add_argument("--min-tag-count", type=int, default=5)
    p.add_argument("--wait-pids", type=int, action="append", default=[], help="repeat per pid")
    a = p.parse_args()
    torch.set_num_threads(1)
    while any(alive(pid) for pid in a.wait_pids):
        time.sleep(5)
    out = {}
    for ck in a.ckpts:
        model, tags, chunk_s = load_tagger(ck)
        dm = MusicTaggingDataModule(a.dataset, root=a.root, min_tag_count=a.min_tag_count,
                                    chunk_seconds=chunk_s or 10.0, sample_rate=model.sample_rate)
        dm.setup("test")
        if dm.tag_names != tags:
            raise SystemExit(f"{ck}: the checkpoint's tags differ from the data module's")
        metric, t_inf, audio_s = TagAUC(len(tags)), 0.0, 0.0
        index = {t: i for i, t in enumerate(tags)}
        for clip in dm.splits["test"]:
            wav = load_clip(clip.path, model.sample_rate)
            chunks = song_chunks(wav, dm.chunk)
            t0 = time.perf_counter()
            with torch.no_grad():
                prob = torch.sigmoid(model(chunks)).mean(0, keepdim=True)
            t_inf += time.perf_counter() - t0
            audio_s += wav.numel() / model.sample_rate
            y = torch.zeros(1, len(tags))
            for t in clip.tags:
                y[0, index[t]] = 1
            metric.update(prob, y)
        res = metric.compute()
        ckpt = torch.load(ck, map_location="cpu", weights_only=True)
        out[ck] = {"model": type(model).__name__, "params": sum(q.numel() for q in model.parameters()),
                   "epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step"),
                   "test_songs": len(dm.splits["test"]), "roc_auc": float(res["roc_auc"]),
                   "pr_auc": float(res["pr_auc"]), "undefined_tags": int(res["undefined"]),
                   "infer_s_per_audio_min": t_inf / (audio_s / 60)}
        print(json.dumps(out[ck]), flush=True)
        print(format_tag_table(tags, metric.per_tag()), flush=True)


if __name__ == "__main__":
    main()
