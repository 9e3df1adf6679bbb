"""attnkit vs RecBole SASRec on sasrec-games: training steps and full-ranking evaluation, interleaved in one process.

Both libraries build their own data pipeline from the same file and train the same model settings
(``recsys_recbole.recbole_config``: D=50, 2 blocks, 1 head, FFN 50, ReLU, dropout 0.5, L=50, batch 128,
Adam 1e-3). Rounds alternate between the two so both see the same machine load. Loss pairs: attnkit
``bce`` (the paper: one sampled negative per position) vs RecBole ``BPR`` (one sampled negative per
sequence prefix; RecBole has no BCE for SASRec), and ``ce`` vs ``CE`` (full softmax).

One epoch covers each training transition once in both libraries (RecBole: one instance per prefix;
attnkit: all positions of a user's sequence per row), so epoch time = step time x steps per epoch,
data loading included. Evaluation: one full-ranking pass over all validation users.

Needs an environment with both attnkit and RecBole (not an attnkit dependency)::

    uv venv /tmp/rbv --python 3.11
    VIRTUAL_ENV=/tmp/rbv uv pip install recbole==1.2.1 torch==2.11.0 "numpy<2" "pandas<2.2" \
        "lightning==2.6.*" torchmetrics pyarrow
    VIRTUAL_ENV=/tmp/rbv uv pip install --no-deps ./packages/core ./packages/recsys
    OMP_NUM_THREADS=1 ATTNKIT_DATA_DIR=../shared/data /tmp/rbv/bin/python benchmarks/recsys_vs_recbole.py \
        --work /tmp/recbole-games
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import SASRec as RecBoleSASRec
from recbole.trainer import Trainer
from recbole.utils import init_seed
from recsys_recbole import convert, recbole_config

from attnkit.core.data import fetch
from attnkit.recsys import NextItemTask, SequentialDataModule, sasrec_paper


def cycle(loader):
    while True:
        yield from loader


def time_steps(step, batches, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        step(next(batches))
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True, help="scratch folder for RecBole's atomic files")
    ap.add_argument("--steps", type=int, default=40, help="training steps per round and library")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--losses", nargs="+", default=["bce:BPR", "ce:CE"])
    ap.add_argument("--out", default=None, help="write the JSON result here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    src = fetch("sasrec-games") / "Video.txt"
    work = convert(src, Path(args.work).resolve())
    cwd = os.getcwd()
    os.chdir(work)
    dm = SequentialDataModule("sasrec-games", batch_size=128, eval_batch_size=1024)
    dm.setup()
    result: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, threads {args.threads}",
        "load_average_start": os.getloadavg(),
    }
    for pair in args.losses:
        ours, theirs = pair.split(":")
        config = recbole_config(work, theirs)
        init_seed(42, True)
        logging.getLogger().setLevel(logging.WARNING)
        dataset = create_dataset(config)
        rb_train, rb_valid, _ = data_preparation(config, dataset)
        rb_model = RecBoleSASRec(config, rb_train._dataset)
        rb_trainer = Trainer(config, rb_model)
        rb_opt = torch.optim.Adam(rb_model.parameters(), lr=1e-3)

        torch.manual_seed(42)
        task = NextItemTask(sasrec_paper(dm.num_items), loss=ours, full_ranking=True)
        opt = torch.optim.Adam(task.parameters(), lr=1e-3, betas=(0.9, 0.98))

        def rb_step(inter, model=rb_model, o=rb_opt) -> None:
            model.train()
            o.zero_grad()
            model.calculate_loss(inter).backward()
            o.step()

        def ak_step(batch, t=task, o=opt) -> None:
            t.train()
            o.zero_grad()
            t.compute_loss(batch).backward()
            o.step()

        rb_it, ak_it = cycle(rb_train), cycle(dm.train_dataloader())
        time_steps(rb_step, rb_it, 3)
        time_steps(ak_step, ak_it, 3)  # warm-up
        rb_times, ak_times = [], []
        for r in range(args.rounds):
            rb_times.append(time_steps(rb_step, rb_it, args.steps))
            ak_times.append(time_steps(ak_step, ak_it, args.steps))
            print(f"{pair} round {r}: recbole {rb_times[-1] * 1e3:.1f} ms/step, attnkit {ak_times[-1] * 1e3:.1f} "
                  f"ms/step", flush=True)
        # one full-ranking validation pass each (all users)
        t = time.perf_counter()
        rb_res = rb_trainer.evaluate(rb_valid, load_best_model=False)
        rb_eval = time.perf_counter() - t
        task.eval()
        t = time.perf_counter()
        with torch.inference_mode():
            for b in dm.val_dataloader():
                task._evaluate(b, "val")
        ak_res = {k: float(v) for k, v in task.metrics["val_full"].compute().items()}
        task.metrics["val"].reset()
        task.metrics["val_full"].reset()
        ak_eval = time.perf_counter() - t
        rb_step_s, ak_step_s = statistics.median(rb_times), statistics.median(ak_times)
        rb_epoch, ak_epoch = rb_step_s * len(rb_train), ak_step_s * len(dm.train_dataloader())
        result[pair] = {
            "recbole_steps_per_epoch": len(rb_train), "attnkit_steps_per_epoch": len(dm.train_dataloader()),
            "recbole_step_s": rb_step_s, "attnkit_step_s": ak_step_s,
            "recbole_epoch_s": rb_epoch, "attnkit_epoch_s": ak_epoch, "epoch_speedup": rb_epoch / ak_epoch,
            "recbole_full_eval_s": rb_eval, "attnkit_full_eval_s": ak_eval, "eval_speedup": rb_eval / ak_eval,
            "eval_users": {"recbole": int(rb_valid._dataset.user_num - 1), "attnkit": len(dm.val_dataloader().dataset)},
            "after_warmup_metrics": {"recbole": {k: float(v) for k, v in rb_res.items()}, "attnkit": ak_res},
        }
        print(json.dumps(result[pair], indent=2), flush=True)
    result["load_average_end"] = os.getloadavg()
    os.chdir(cwd)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
