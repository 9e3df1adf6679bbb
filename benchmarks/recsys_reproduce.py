"""Reproduce SASRec on a real dataset with the paper's settings (CPU, time-boxed).

Trains with the paper's hyper-parameters, validates every ``--val-every`` epochs, keeps a checkpoint at
each validation, then tests the best and last checkpoints under the sampled (100 negatives) and the
full-ranking protocol. Writes metrics.csv (Lightning CSV logger) and a JSON summary to ``--out``.

    OMP_NUM_THREADS=1 ATTNKIT_DATA_DIR=../shared/data python benchmarks/recsys_reproduce.py \
        --dataset sasrec-games --epochs 200 --hours 1.5 --out /tmp/sasrec-games
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from attnkit.recsys import NextItemTask, SASRec, SequentialDataModule


class EpochTimer(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._t = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.times.append(time.perf_counter() - self._t)
        if trainer.current_epoch % 5 == 0:
            loss = trainer.callback_metrics.get("train/loss")
            shown = float(loss) if loss is not None else float("nan")
            print(f"epoch {trainer.current_epoch} {self.times[-1]:.1f}s loss {shown:.4f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="sasrec-games")
    ap.add_argument("--root", default=None)
    ap.add_argument("--loss", default="bce")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--hours", type=float, default=1.5)
    ap.add_argument("--val-every", type=int, default=20)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--eval-users", type=int, default=None)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--full-val", action="store_true", help="also rank the whole catalogue at validation")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.ckpt")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pl.seed_everything(args.seed)
    out = Path(args.out)
    dm = SequentialDataModule(args.dataset, root=args.root, max_len=args.max_len, batch_size=128,
                              eval_batch_size=1024, eval_users=args.eval_users, seed=args.seed)
    model = SASRec(dm.num_items, embed_dim=50, num_heads=1, num_layers=2, max_len=args.max_len,
                   dropout=args.dropout)
    task = NextItemTask(model, loss=args.loss, full_ranking=args.full_val,
                        optimizer=lambda p: torch.optim.Adam(p, lr=1e-3, betas=(0.9, 0.98)))
    timer = EpochTimer()
    # best by validation NDCG@10 (the model the paper's protocol reports) and the last epoch
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="best-epoch{epoch}",
                           auto_insert_metric_name=False, monitor="val/ndcg@10", mode="max",
                           save_top_k=1, save_last=True)
    trainer = pl.Trainer(max_epochs=args.epochs, max_time={"hours": args.hours}, accelerator="cpu",
                         check_val_every_n_epoch=args.val_every, logger=CSVLogger(out, name="", version=""),
                         callbacks=[timer, ckpt], enable_progress_bar=False, num_sanity_val_steps=0,
                         default_root_dir=out)
    t0 = time.perf_counter()
    last = out / "checkpoints" / "last.ckpt"
    trainer.fit(task, dm, ckpt_path=str(last) if args.resume and last.is_file() else None)
    train_s = time.perf_counter() - t0
    epochs_done = trainer.current_epoch
    task.full_ranking = True
    t1 = time.perf_counter()
    res = trainer.test(task, dm, ckpt_path=None, verbose=False)[0]
    test_s = time.perf_counter() - t1
    best = {}
    if ckpt.best_model_path:
        best = trainer.test(task, dm, ckpt_path=ckpt.best_model_path, verbose=False)[0]
    summary = {
        "dataset": args.dataset, "loss": args.loss, "epochs_trained": epochs_done, "train_seconds": train_s,
        "mean_epoch_seconds": sum(timer.times) / max(len(timer.times), 1),
        "epoch_seconds": timer.times, "test_seconds": test_s,
        "eval_users": args.eval_users, "final_model_test": {k: float(v) for k, v in res.items()},
        "best_checkpoint": Path(ckpt.best_model_path).name if ckpt.best_model_path else None,
        "best_val_ndcg@10": float(ckpt.best_model_score) if ckpt.best_model_score is not None else None,
        "best_model_test": {k: float(v) for k, v in best.items()},
        "machine": f"{platform.machine()}, torch {torch.__version__}, threads {args.threads}",
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
    main()
