"""PhysioNet-2012 imputation: attnkit SAITS vs PyPOTS SAITS on the same data, masks and epochs.

Both use the paper's hyper-parameters (5 layers, d_model 256, d_ffn 512, 8 heads, d_k = d_v = 32, no dropout,
Adam lr 6.83e-4, batch 128, MIT rate 0.2) and the data module's split, standardisation and seeded 10%
hold-out. Metrics are computed by the same code (attnkit.timeseries.metrics) on the same held-out values.

    ATTNKIT_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/saits_physionet2012.py attnkit --epochs 5
    # continue that run from its last checkpoint until 09:40 UTC (or --epochs in all, whichever first)
    ... saits_physionet2012.py attnkit --precision bf16-mixed --resume last --epochs 1000 --until 09:40
    ATTNKIT_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/saits_physionet2012.py pypots --epochs 5
    python benchmarks/saits_physionet2012.py baselines
    python benchmarks/saits_physionet2012.py evaluate --epochs K   # both, from their epoch-K checkpoints

Results go to --out (JSON per run).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from attnkit.timeseries import baseline_imputations, saits_physionet2012, training_median
from attnkit.timeseries.data import PhysioNet2012DataModule
from attnkit.timeseries.metrics import MaskedMAE, MaskedMRE, MaskedRMSE

LR = 0.00068277455043675505
PAPER = {"mae": 0.186, "rmse": 0.431, "mre": 0.266}


def metrics(pred: np.ndarray | torch.Tensor, target: torch.Tensor, held: torch.Tensor) -> dict[str, float]:
    pred = torch.as_tensor(pred, dtype=torch.float64)
    t = torch.nan_to_num(target.double())
    out = {}
    for name, cls in (("mae", MaskedMAE), ("rmse", MaskedRMSE), ("mre", MaskedMRE)):
        m = cls()
        m.update(pred, t, held)
        out[name] = float(m.compute())
    return out


def eval_arrays(dm: PhysioNet2012DataModule, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ds = dm.dataset(split)
    x = ds.values
    held = ds.holdout
    given = x.clone()
    given[held] = float("nan")
    return x, held, given


def run_baselines(dm: PhysioNet2012DataModule) -> dict[str, dict[str, float]]:
    """Training mean, training median and LOCF on the test hold-out (attnkit.timeseries.baselines)."""
    x, held, given = eval_arrays(dm, "test")
    assert dm.mean is not None and dm.std is not None
    median = torch.as_tensor((training_median(dm.splits.train) - dm.mean) / dm.std, dtype=given.dtype)
    return {name: metrics(pred, x, held) for name, pred in baseline_imputations(given, median).items()}


class _EpochTimes(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.getMessage()).startswith("Epoch"):
            self.times.append(time.perf_counter())
            print(json.dumps({"epoch": len(self.times), "seconds": self.times[-1] - self.t0}), flush=True)
            self.t0 = self.times[-1]


def run_pypots(dm: PhysioNet2012DataModule, epochs: int, out_dir: Path) -> dict:
    from pypots.imputation import SAITS as PSAITS
    from pypots.nn.modules.loss import MAE
    from pypots.optim import Adam
    from pypots.utils.logging import logger

    train = dm.dataset("train").values.numpy()
    xv, _, gv = eval_arrays(dm, "val")
    xt, held_t, gt = eval_arrays(dm, "test")
    model = PSAITS(n_steps=48, n_features=dm.num_features, n_layers=5, d_model=256, n_heads=8, d_k=32, d_v=32,
                   d_ffn=512, dropout=0.0, attn_dropout=0.0, diagonal_attention_mask=True, ORT_weight=1,
                   MIT_weight=1, batch_size=128, epochs=epochs, patience=None, training_loss=MAE,
                   validation_metric=MAE, optimizer=Adam(lr=LR), num_workers=0, device="cpu",
                   saving_path=str(out_dir / "pypots"), model_saving_strategy="all")
    h = _EpochTimes()
    logger.addHandler(h)
    t0 = h.t0 = time.perf_counter()
    model.fit({"X": train}, {"X": gv.numpy(), "X_ori": xv.numpy()})
    total = time.perf_counter() - t0
    stamps = [t0, *h.times]
    per_epoch = [b - a for a, b in itertools.pairwise(stamps)]
    pred = model.predict({"X": gt.numpy()})["imputation"]
    return {"impl": "pypots", "epochs": epochs, "fit_seconds": total, "epoch_seconds": per_epoch,
            "test": metrics(pred, xt, held_t)}


def replay_legacy_random_state(dm: PhysioNet2012DataModule, epochs_done: int) -> None:
    """Bring the shuffling and MIT-mask random streams to where an uninterrupted run would be.

    For checkpoints written before the task and data module saved their random state (this run's epochs
    1-4). Call right after the model is built in a process seeded like the original one: the original run
    drew, per epoch, one permutation of the training windows from the data module's generator and one
    ``torch.rand((b, 48, F))`` per batch from the global generator (the MCAR MIT mask), nothing else.
    """
    n, bs = len(dm.dataset("train")), dm.batch_size
    for _ in range(epochs_done):
        torch.randperm(n, generator=dm.train_generator)
        for i in range(0, n, bs):
            torch.rand((min(bs, n - i), dm.num_steps, dm.num_features))


def _utc_deadline(hhmm: str) -> float:
    """Seconds since the epoch of the next ``HH:MM`` UTC."""
    now = datetime.datetime.now(datetime.UTC)
    h, m = (int(v) for v in hhmm.split(":"))
    t = now.replace(hour=h, minute=m, second=0, microsecond=0)
    return (t if t > now else t + datetime.timedelta(days=1)).timestamp()


def run_attnkit(dm: PhysioNet2012DataModule, epochs: int, out_dir: Path, precision: str,
                resume: str | None = None, until: str | None = None) -> dict:
    import lightning as L
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import CSVLogger

    from attnkit.timeseries.tasks import ImputationTask

    ckdir = out_dir / "attnkit" / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    deadline = _utc_deadline(until) if until else None

    class EpochSaver(Callback):
        """Per epoch: the weights (``epoch{E}-weights.pt``) and a full resumable ``last.ckpt`` (atomic)."""

        def __init__(self) -> None:
            self.val: dict[int, float] = {}

        def on_validation_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
            if trainer.sanity_checking:
                return
            e = trainer.current_epoch
            self.val[e] = float(trainer.callback_metrics["val/mae"])
            torch.save(pl_module.state_dict(), ckdir / f"epoch{e}-weights.pt")
            tmp = ckdir / "last.ckpt.tmp"
            trainer.save_checkpoint(tmp)
            os.replace(tmp, ckdir / "last.ckpt")
            if deadline is not None and timer.ends and timer.starts:
                if time.time() + (timer.ends[-1] - timer.starts[-1]) > deadline:
                    print(json.dumps({"stop": f"another epoch would end after {until} UTC"}), flush=True)
                    trainer.should_stop = True

    class Timer(Callback):
        def __init__(self) -> None:
            self.starts: list[float] = []
            self.ends: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
            self.starts.append(time.perf_counter())

        def on_validation_epoch_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
            if not trainer.sanity_checking:
                self.ends.append(time.perf_counter())
                log = {"epoch": trainer.current_epoch, "seconds": self.ends[-1] - self.starts[-1],
                       **{k: float(v) for k, v in trainer.callback_metrics.items()}}
                print(json.dumps(log), flush=True)

    task = ImputationTask(saits_physionet2012(dm.num_features, 48),
                          optimizer=lambda p: torch.optim.Adam(p, lr=LR))
    ckpt_path = None
    if resume:
        ckpt_path = str(ckdir / "last.ckpt") if resume == "last" else resume
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if "mit_rng_state" not in state:  # written before the random state was saved
            done = int(state["loops"]["fit_loop"]["epoch_progress"]["total"]["processed"])  # training epochs run
            replay_legacy_random_state(dm, done)
            print(json.dumps({"resume": ckpt_path, "epochs_done": done, "random_state": "replayed"}), flush=True)
        del state
    timer = Timer()
    saver = EpochSaver()
    trainer = L.Trainer(max_epochs=epochs, precision=precision, callbacks=[timer, saver],  # type: ignore[arg-type]
                        logger=CSVLogger(out_dir / "attnkit"), enable_progress_bar=False,
                        enable_checkpointing=False, num_sanity_val_steps=0, deterministic=False)
    t0 = time.perf_counter()
    trainer.fit(task, dm, ckpt_path=ckpt_path)
    total = time.perf_counter() - t0
    best = min(saver.val, key=saver.val.__getitem__)
    task.load_state_dict(torch.load(ckdir / f"epoch{best}-weights.pt", weights_only=True))
    res = trainer.test(task, dm, verbose=False)[0]
    return {"impl": f"attnkit ({precision})", "epochs": trainer.current_epoch, "fit_seconds": total,
            "resumed_from": ckpt_path, "val_mae": saver.val,
            "epoch_seconds": [b - a for a, b in zip(timer.starts, timer.ends, strict=False)],
            "best_epoch_this_run": best + 1,
            "test": {k.split("/")[1]: v for k, v in res.items()}}


def evaluate_epoch(dm: PhysioNet2012DataModule, epoch: int, out_dir: Path) -> dict:
    """Test metrics of both implementations after ``epoch`` (1-based) from their per-epoch checkpoints."""
    from pypots.imputation import SAITS as PSAITS

    from attnkit.timeseries.tasks import ImputationTask

    xt, held, gt = eval_arrays(dm, "test")
    res: dict = {"impl": "evaluate", "epoch": epoch}
    ckdir = out_dir / "attnkit" / "checkpoints"
    ck, weights = ckdir / f"epoch{epoch - 1}.ckpt", ckdir / f"epoch{epoch - 1}-weights.pt"
    if ck.is_file() or weights.is_file():
        task = ImputationTask(saits_physionet2012(dm.num_features, 48))
        if ck.is_file():
            state = torch.load(ck, map_location="cpu", weights_only=True)["state_dict"]
        else:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        task.load_state_dict(state)
        task.eval()
        with torch.no_grad():
            obs = ~torch.isnan(gt)
            pred = torch.cat([task.model(torch.nan_to_num(gt[i : i + 256]), obs[i : i + 256].float()).x_tilde_3
                              for i in range(0, len(gt), 256)])
        res["attnkit"] = metrics(pred, xt, held)
    found = sorted((out_dir / "pypots").rglob(f"SAITS_epoch{epoch}_*.pypots"))
    if found:
        model = PSAITS(n_steps=48, n_features=dm.num_features, n_layers=5, d_model=256, n_heads=8, d_k=32, d_v=32,
                       d_ffn=512, device="cpu")
        model.load(str(found[-1]))
        res["pypots"] = metrics(model.predict({"X": gt.numpy()})["imputation"], xt, held)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("impl", choices=["attnkit", "pypots", "baselines", "evaluate"])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--precision", default="32-true", help="attnkit only: 32-true or bf16-mixed")
    p.add_argument("--seed", type=int, default=2023)
    p.add_argument("--out", default="/work/notes/saits-physionet2012")
    p.add_argument("--resume", help="attnkit only: 'last' (OUT/attnkit/checkpoints/last.ckpt) or a checkpoint path")
    p.add_argument("--until", help="attnkit only: HH:MM UTC; stop when another epoch would end after it")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    dm = PhysioNet2012DataModule(seed=args.seed)
    dm.setup()
    info = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "paper": PAPER,
            "n": {k: len(dm.dataset(k)) for k in ("train", "val", "test")}}
    if args.impl == "baselines":
        res: dict = {"impl": "baselines", **run_baselines(dm)}
    elif args.impl == "evaluate":
        res = evaluate_epoch(dm, args.epochs, out_dir)
    elif args.impl == "pypots":
        res = run_pypots(dm, args.epochs, out_dir)
    else:
        res = run_attnkit(dm, args.epochs, out_dir, args.precision, args.resume, args.until)
    res.update(info)
    names = {"attnkit": f"attnkit-{args.precision}", "evaluate": f"evaluate-epoch{args.epochs}"}
    name = names.get(args.impl, args.impl)
    (out_dir / f"{name}.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
