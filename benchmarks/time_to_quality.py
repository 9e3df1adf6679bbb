"""Time to quality: validation and test metric against wall-clock for a training recipe (CPU).

For each recipe the script trains, validates every ``--val-every`` epochs (the recipe's own model selection
signal), and keeps a copy of the weights at each validation. After training it scores every copy on the
test split with the paper's protocol, so the curve says *when* the paper's number was first reached. The
time axis is the cumulative wall-clock of training epochs plus the validations the recipe itself runs;
the test scoring afterwards is not counted (it only locates the crossing). Writes ``curve.csv`` and
``summary.json`` to ``--out``.

SASRec on Amazon Games (paper: HR@10 0.7410, NDCG@10 0.5360), the packaged recipe and a faster one:

    OMP_NUM_THREADS=1 ATTNKIT_DATA_DIR=../shared/data python benchmarks/time_to_quality.py sasrec \
        --out /tmp/ttq/sasrec-base-s1 --seed 1 --epochs 200 --val-every 10
    OMP_NUM_THREADS=1 ATTNKIT_DATA_DIR=../shared/data python benchmarks/time_to_quality.py sasrec \
        --out /tmp/ttq/sasrec-fast-s1 --seed 1 --batch-size 256 --lr 0.002 --epochs 100 --val-every 5

SAITS on Beijing Air-Quality (paper: test MAE 0.137), the packaged recipe (constant LR, early stop 30):

    OMP_NUM_THREADS=1 ATTNKIT_DATA_DIR=../shared/data python benchmarks/time_to_quality.py saits \
        --dataset air-quality --out /tmp/ttq/aq-s1 --seed 1 --epochs 2000 --val-every 1 --patience 30
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from functools import partial
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

PAPER = {
    "sasrec": {"test/hr@10": 0.7410, "test/ndcg@10": 0.5360},  # Kang & McAuley 2018, Table III (Games)
    "physionet2012": {"test/mae": 0.186},  # Du et al. 2023, Table 2 (RMSE 0.431, MRE 26.6%)
    "air-quality": {"test/mae": 0.137},  # Du et al. 2023, Table 2 (RMSE 0.518, MRE 18.7%)
}


def reached(row: dict[str, Any], paper: dict[str, float]) -> bool:
    """Whether every metric of ``paper`` is at least as good in ``row`` (errors lower, scores higher)."""
    return all(key in row and (row[key] <= target if is_error(key) else row[key] >= target)
               for key, target in paper.items())


def is_error(key: str) -> bool:
    """Whether lower is better for metric ``key``."""
    return any(m in key for m in ("mae", "mse", "mre", "loss"))


class CurveRecorder(Callback):
    """Wall-clock since the fit began, split into validation and the rest; weights kept at each validation."""

    def __init__(self, test_fn: Any, paper: dict[str, float], stop_at_paper: bool) -> None:
        self.test_fn, self.paper, self.stop_at_paper = test_fn, paper, stop_at_paper
        self.train_s = 0.0
        self._v = 0.0
        self.val_s = 0.0
        self.rows: list[dict[str, Any]] = []
        self._t = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t = time.perf_counter()

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._v = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        now = time.perf_counter()
        self.val_s += now - self._v
        self.train_s = now - self._t - self.val_s
        row: dict[str, Any] = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
                               "train_s": round(self.train_s, 2), "val_s": round(self.val_s, 2),
                               "time_s": round(self.train_s + self.val_s, 2)}
        for key, value in trainer.callback_metrics.items():
            if key.startswith("val/"):
                row[key] = float(value)
        t_test = time.perf_counter()
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            row.update(self.test_fn(pl_module))
        pl_module.train(was_training)
        self._t += time.perf_counter() - t_test  # scoring the test split is not part of the recipe's time
        self.rows.append(row)
        shown = {k: round(v, 4) for k, v in row.items() if "/" in k and ("10" in k or "mae" in k)}
        print(f"epoch {row['epoch']} t={row['time_s']:.0f}s {shown}", flush=True)
        if self.stop_at_paper and reached(row, self.paper):
            trainer.should_stop = True


def schedule(args: argparse.Namespace, steps_per_epoch: int) -> Any:
    """The LR schedule the flags ask for (the library's own classes, as a config would name them)."""
    if args.cosine or args.warmup:
        from attnkit.core.tasks import WarmupCosineLR

        # without --cosine: warm-up, then constant (the cosine spans a practically endless run)
        total = None if args.cosine else 10**12
        return partial(WarmupCosineLR, warmup_steps=args.warmup * steps_per_epoch, total_steps=total,
                       min_lr_ratio=args.floor)
    if getattr(args, "plateau", 0):
        return partial(torch.optim.lr_scheduler.ReduceLROnPlateau, mode="min", factor=0.5, patience=args.plateau)
    return None


def run_sasrec(args: argparse.Namespace) -> None:
    from attnkit.recsys import NextItemTask, SASRec, SequentialDataModule

    dm = SequentialDataModule(args.dataset, max_len=50, batch_size=args.batch_size, eval_batch_size=1024,
                              num_eval_negatives=100, seed=args.seed)
    dm.setup("fit")
    model = SASRec(dm.num_items, embed_dim=50, num_heads=1, num_layers=2, max_len=50, dropout=args.dropout)
    task = NextItemTask(model, loss=args.loss, full_ranking=args.full_val, optimizer=partial(
        torch.optim.Adam, lr=args.lr, betas=(0.9, 0.98)), scheduler=schedule(args, len(dm.train_dataloader())))

    def test_fn(t: Any) -> dict[str, float]:
        full, t.full_ranking = t.full_ranking, False
        t._popularity = None
        for batch in dm.test_dataloader():
            t._evaluate(batch, "test")
        t.full_ranking = full
        metric = t._metric("test")
        res = {f"test/{k}": float(v) for k, v in metric.compute().items()}
        metric.reset()
        return res

    train(args, task, dm, targets(args, PAPER["sasrec"]), test_fn)


def targets(args: argparse.Namespace, paper: dict[str, float]) -> dict[str, float]:
    """The paper's numbers, or the ``--target key=value`` pairs given instead."""
    if not args.target:
        return paper
    out = {}
    for item in args.target:
        key, _, value = item.partition("=")
        if not value:
            raise SystemExit(f"--target takes metric=value (e.g. test/mae=0.2), got {item!r}")
        out[key] = float(value)
    return out


def run_saits(args: argparse.Namespace) -> None:
    from attnkit.timeseries import SAITS, ImputationTask, saits_physionet2012
    from attnkit.timeseries.data import AirQualityDataModule, ETTDataModule, PhysioNet2012DataModule
    from attnkit.timeseries.metrics import MaskedMAE, MaskedMRE, MaskedRMSE

    dm: Any
    if args.dataset == "physionet2012":  # the paper's settings (packaged saits-physionet2012)
        dm = PhysioNet2012DataModule(batch_size=args.batch_size or 128, holdout_rate=0.1)
        model = saits_physionet2012()
        lr = args.lr or 0.00068277455043675505
    elif args.dataset == "air-quality":  # the paper's settings (packaged saits-air-quality)
        dm = AirQualityDataModule(num_steps=24, batch_size=args.batch_size or 128, holdout_rate=0.1)
        dm.setup("fit")
        model = SAITS(dm.num_features, 24, num_layers=1, embed_dim=512, num_heads=4, head_dim=128,
                      value_head_dim=64, ffn_dim=512, dropout=0.0)
        lr = args.lr or 0.00088213879506932665
    else:  # packaged saits-ett
        dm = ETTDataModule(name=args.dataset, num_steps=24, stride=12, batch_size=args.batch_size or 64,
                           holdout_rate=0.1)
        dm.setup("fit")
        model = SAITS(dm.num_features, 24, num_layers=2, embed_dim=256, num_heads=4, head_dim=64,
                      value_head_dim=64, ffn_dim=128, dropout=0.1)
        lr = args.lr or 1e-3
    dm.setup("fit")

    task = ImputationTask(model, mit_rate=0.2, optimizer=partial(torch.optim.Adam, lr=lr, fused=True),
                          scheduler=schedule(args, len(dm.train_dataloader())))
    dm.setup("test")

    def test_fn(t: Any) -> dict[str, float]:
        ms = {"mae": MaskedMAE(), "rmse": MaskedRMSE(), "mre": MaskedMRE()}
        for batch in dm.test_dataloader():
            x, held = batch["x"], batch["holdout"]
            given = ~torch.isnan(x) & ~held
            x0 = torch.nan_to_num(x)
            pred = t.model(torch.where(given, x0, torch.zeros_like(x0)), given.to(x0.dtype)).x_tilde_3
            for m in ms.values():
                m.update(pred.float(), x0, held)
        return {f"test/{k}": float(m.compute()) for k, m in ms.items()}

    train(args, task, dm, targets(args, PAPER.get(args.dataset, {})), test_fn)


def train(args: argparse.Namespace, task: Any, dm: Any, paper: dict[str, float], test_fn: Any) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rec = CurveRecorder(test_fn, paper, args.stop_at_paper)
    callbacks: list[Callback] = [rec]
    if getattr(args, "patience", None):
        from lightning.pytorch.callbacks import EarlyStopping

        callbacks.append(EarlyStopping(monitor="val/mae", mode="min", patience=args.patience))
    trainer = pl.Trainer(max_epochs=args.epochs, max_time={"hours": args.hours}, accelerator="cpu",
                         precision=args.precision, check_val_every_n_epoch=args.val_every, logger=False,
                         enable_checkpointing=False, callbacks=callbacks, enable_progress_bar=False,
                         num_sanity_val_steps=0, default_root_dir=out, enable_model_summary=False)
    trainer.fit(task, dm)
    first = {key: next(({"epoch": r["epoch"], "time_s": r["time_s"]} for r in rec.rows if reached(r, {key: t})),
                       None) for key, t in paper.items()}
    both = [r for r in rec.rows if reached(r, paper)] if paper else []
    keys = sorted({k for r in rec.rows for k in r}, key=lambda k: (not k[0].isalpha() or "/" in k, k))
    with open(out / "curve.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rec.rows)
    summary = {"args": vars(args), "paper": paper, "first_reached": first,
               "all_reached": {"epoch": both[0]["epoch"], "time_s": both[0]["time_s"]} if both else None,
               "epochs": trainer.current_epoch, "train_s": rec.train_s, "val_s": rec.val_s,
               "machine": f"{platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}"}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("first_reached", "all_reached", "train_s", "val_s")}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("sasrec", help="SASRec, Amazon Games (paper settings unless changed)")
    s.add_argument("--dataset", default="sasrec-games")
    s.add_argument("--loss", default="bce")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--dropout", type=float, default=0.5)
    s.add_argument("--warmup", type=int, default=0, help="warm-up epochs (linear, per step)")
    s.add_argument("--cosine", action="store_true", help="cosine decay to --floor at --epochs")
    s.add_argument("--floor", type=float, default=0.0, help="cosine floor, as a fraction of the peak LR")
    s.add_argument("--full-val", action="store_true", help="also rank the whole catalogue at validation")
    t = sub.add_parser("saits", help="SAITS imputation (PhysioNet-2012 / Air-Quality paper settings, or ETTh1/ETTh2)")
    t.add_argument("--dataset", default="physionet2012", choices=["physionet2012", "air-quality", "ETTh1", "ETTh2"])
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--warmup", type=int, default=0, help="warm-up epochs (linear, per step)")
    t.add_argument("--cosine", action="store_true", help="cosine decay at --epochs")
    t.add_argument("--floor", type=float, default=0.0, help="cosine floor, as a fraction of the peak LR")
    t.add_argument("--plateau", type=int, default=0, help="halve the LR after this many epochs without a new best")
    t.add_argument("--patience", type=int, default=0, help="early stopping on val/mae (0: off)")
    for p in (s, t):
        p.add_argument("--epochs", type=int, default=200)
        p.add_argument("--val-every", type=int, default=10)
        p.add_argument("--hours", type=float, default=2.0)
        p.add_argument("--precision", default="32-true")
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--out", required=True)
        p.add_argument("--target", action="append", default=[],
                       help="metric=value to reach instead of the paper's numbers (repeatable)")
        p.add_argument("--stop-at-paper", action="store_true",
                       help="stop at the first validation where the test split reaches the paper's numbers")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pl.seed_everything(args.seed, verbose=False)
    {"sasrec": run_sasrec, "saits": run_saits}[args.what](args)


if __name__ == "__main__":
    main()
