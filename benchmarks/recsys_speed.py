"""Training-step and evaluation speed of SASRec on sasrec-games (CPU), ratios measured in one run.

Compares NextItemTask with length buckets (default) against running every batch padded to max_len,
and times one sampled-protocol evaluation pass over all users.

    OMP_NUM_THREADS=1 ATTNKIT_DATA_DIR=../shared/data python benchmarks/recsys_speed.py --steps 30
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from attnkit.recsys import NextItemTask, SequentialDataModule, sasrec_paper


def step_time(task: NextItemTask, batches: list[dict[str, torch.Tensor]]) -> float:
    opt = torch.optim.Adam(task.parameters(), lr=1e-3, betas=(0.9, 0.98))
    task.train()
    t = time.perf_counter()
    for b in batches:
        opt.zero_grad()
        task.compute_loss(b).backward()
        opt.step()
    return (time.perf_counter() - t) / len(batches)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="sasrec-games")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dm = SequentialDataModule(args.dataset, eval_batch_size=1024)
    dm.setup()
    it = iter(dm.train_dataloader())
    batches = [next(it) for _ in range(args.steps)]
    res: dict[str, float] = {}
    for name, buckets in (("padded", None), ("length_buckets", (8, 16, 32))):
        task = NextItemTask(sasrec_paper(dm.num_items), length_buckets=buckets)
        res[f"{name}_step_s"] = min(step_time(task, batches) for _ in range(args.repeats))
    steps_per_epoch = len(dm.train_dataloader())
    res["epoch_s_estimate"] = res["length_buckets_step_s"] * steps_per_epoch
    res["speedup_length_buckets"] = res["padded_step_s"] / res["length_buckets_step_s"]
    task.eval()
    t = time.perf_counter()
    with torch.no_grad():
        for b in dm.val_dataloader():
            task._evaluate(b, "val")
    res["sampled_eval_all_users_s"] = time.perf_counter() - t
    res["users_evaluated"] = float(task.metrics["val"].count)
    res["machine"] = f"{platform.machine()}, torch {torch.__version__}, 1 thread"  # type: ignore[assignment]
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
