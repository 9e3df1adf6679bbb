"""RecBole's SASRec on sasrec-games with attnkit's paper settings: epoch time, evaluation time, metrics.

Runs in a separate, benchmark-only environment (RecBole is not an attnkit dependency)::

    uv venv /tmp/rbv --python 3.11 && VIRTUAL_ENV=/tmp/rbv uv pip install recbole==1.2.1 torch==2.11.0 "numpy<2"
    OMP_NUM_THREADS=1 /tmp/rbv/bin/python benchmarks/recsys_recbole.py \
        --data ../shared/data/sasrec-games/Video.txt --work /tmp/recbole-games --epochs 30

The SASRec text file (``user item`` per line, each user's actions in time order) is converted to RecBole
atomic files under ``--work`` (outside the repository; the data's licence forbids committing it), with the
line number as timestamp so RecBole's leave-one-out split (``LS: valid_and_test``, ``order: TO``) holds out
the same last / second-to-last items as attnkit's. Hyper-parameters follow attnkit's ``sasrec-games``
config (D=50, 2 blocks, 1 head, FFN width 50, ReLU, dropout 0.5, max_len 50, batch 128, Adam 1e-3).
The best model by validation NDCG@10 is kept in memory (no pickle round trip) and tested once.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import time
from pathlib import Path

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import SASRec
from recbole.trainer import Trainer
from recbole.utils import init_seed


class TimedTrainer(Trainer):
    """RecBole's trainer, timing each training epoch and evaluation and keeping the best weights in memory."""

    def __init__(self, config: Config, model: torch.nn.Module) -> None:
        super().__init__(config, model)
        self.epoch_seconds: list[float] = []
        self.eval_seconds: list[float] = []
        self.curve: list[dict[str, float]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = -1

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        t = time.perf_counter()
        out = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        self.epoch_seconds.append(time.perf_counter() - t)
        print(f"epoch {epoch_idx} train {self.epoch_seconds[-1]:.1f}s loss {float(out):.4f}", flush=True)
        return out

    def _valid_epoch(self, valid_data, show_progress=False):
        t = time.perf_counter()
        score, result = super()._valid_epoch(valid_data, show_progress)
        self.eval_seconds.append(time.perf_counter() - t)
        self.curve.append({"epoch": len(self.epoch_seconds), "train_seconds": sum(self.epoch_seconds),
                           **{k: float(v) for k, v in result.items()}})
        print(f"  valid {dict(result)} ({self.eval_seconds[-1]:.1f}s)", flush=True)
        return score, result

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.best_epoch = epoch + 1


def convert(src: Path, work: Path) -> Path:
    """Write ``<work>/games/games.inter`` from a SASRec ``user item`` file; line number = timestamp."""
    out = work / "games"
    out.mkdir(parents=True, exist_ok=True)
    with src.open() as f, (out / "games.inter").open("w") as g:
        g.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for i, line in enumerate(f):
            u, it = line.split()
            g.write(f"{u}\t{it}\t{i}\n")
    return work


def recbole_config(work: Path, loss: str, epochs: int = 1, eval_step: int = 1, stopping_step: int = 5) -> Config:
    """RecBole configuration with attnkit's ``sasrec-games`` hyper-parameters and the authors' split."""
    cfg = {
        "data_path": str(work), "checkpoint_dir": str(work / "saved"), "use_gpu": False, "device": "cpu",
        "seed": 42, "reproducibility": True, "show_progress": False, "state": "WARNING",
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": 50,
        "n_layers": 2, "n_heads": 1, "hidden_size": 50, "inner_size": 50, "hidden_dropout_prob": 0.5,
        "attn_dropout_prob": 0.5, "hidden_act": "relu", "layer_norm_eps": 1e-8, "loss_type": loss,
        "train_neg_sample_args": None if loss == "CE" else {"distribution": "uniform", "sample_num": 1},
        "train_batch_size": 128, "eval_batch_size": 1024, "learning_rate": 1e-3, "epochs": epochs,
        "eval_step": eval_step, "stopping_step": stopping_step,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Hit", "NDCG", "MRR"], "topk": [10], "valid_metric": "NDCG@10",
    }
    return Config(model="SASRec", dataset="games", config_dict=cfg)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="sasrec-games Video.txt")
    ap.add_argument("--work", required=True, help="scratch folder for atomic files and logs")
    ap.add_argument("--loss", default="CE", choices=["CE", "BPR"])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--eval-step", type=int, default=1)
    ap.add_argument("--stopping-step", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = convert(Path(args.data).resolve(), Path(args.work).resolve())
    os.chdir(work)  # RecBole writes log/ and log_tensorboard/ into the working directory
    config = recbole_config(work, args.loss, args.epochs, args.eval_step, args.stopping_step)
    init_seed(config["seed"], config["reproducibility"])
    logging.getLogger().setLevel(logging.WARNING)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    model = SASRec(config, train._dataset).to("cpu")
    trainer = TimedTrainer(config, model)
    t0 = time.perf_counter()
    trainer.fit(train, valid, saved=True, verbose=False)
    fit_s = time.perf_counter() - t0
    if trainer.best_state is not None:
        model.load_state_dict(trainer.best_state)
    t1 = time.perf_counter()
    result = trainer.evaluate(test, load_best_model=False)
    test_s = time.perf_counter() - t1
    summary = {
        "library": "recbole 1.2.1", "loss": args.loss, "users": int(dataset.user_num - 1),
        "items": int(dataset.item_num - 1), "train_instances": len(train.dataset),
        "steps_per_epoch": len(train), "epochs_trained": len(trainer.epoch_seconds),
        "mean_epoch_seconds": sum(trainer.epoch_seconds) / max(len(trainer.epoch_seconds), 1),
        "mean_eval_seconds": sum(trainer.eval_seconds) / max(len(trainer.eval_seconds), 1),
        "fit_seconds": fit_s, "best_epoch": trainer.best_epoch, "test_seconds": test_s,
        "test_full": {k: float(v) for k, v in result.items()}, "curve": trainer.curve,
        "machine": f"{platform.machine()}, torch {torch.__version__}, threads {args.threads}",
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
    main()
