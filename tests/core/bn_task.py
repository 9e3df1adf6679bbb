"""A tiny task with batch norm and dropout, for the PreciseBatchNorm tests; also run as a script under DDP.

``python bn_task.py OUT --devices N``: fits 3 epochs with :class:`PreciseBatchNorm` (strategy ``ddp`` when
N > 1) and every rank saves its batch-norm running statistics and its model's state dict to ``OUT/rank<r>.pt``;
``--clip-from K`` also clips the gradient norm from step K on (:class:`ClipGradients`), without dropout.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from attnkit.core.tasks import ClipGradients, PreciseBatchNorm, Task

CLIP_NORM = 0.05  # for ``--clip-from``: below the gradient norm at every step of the run


def make_model() -> nn.Module:
    """Linear -> BatchNorm1d -> ReLU -> Dropout -> Linear -> BatchNorm1d (two tracked layers)."""
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3),
                         nn.BatchNorm1d(3))


class BNTask(Task):
    """Regression of 3 targets with an L2 loss; ``forward_batch`` runs the model on the inputs."""

    def __init__(self, model: nn.Module, lr: float = 0.5) -> None:
        super().__init__(model, optimizer=lambda p: torch.optim.SGD(p, lr=lr))

    def forward_batch(self, batch: Any) -> Tensor:
        return self.model(batch[0])

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, y = batch
        loss = ((self.model(x) - y) ** 2).mean()
        self.log_loss("train", loss, x.shape[0])
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log_loss("val", ((self.model(x) - y) ** 2).mean(), x.shape[0])


def data(n: int = 96, seed: int = 0) -> TensorDataset:
    """Inputs with a non-zero mean and scale, so fresh statistics differ from the initial ones."""
    g = torch.Generator().manual_seed(seed)
    x = 3.0 + 2.0 * torch.randn(n, 6, generator=g)
    return TensorDataset(x, torch.randn(n, 3, generator=g))


def loaders(batch_size: int = 8, shuffle: bool = False) -> tuple[DataLoader, DataLoader]:
    """Training and validation loaders over :func:`data`."""
    return (DataLoader(data(), batch_size=batch_size, shuffle=shuffle),
            DataLoader(data(32, seed=1), batch_size=16))


class ShardedData(pl.LightningDataModule):
    """Rank r of N reads samples r, r+N, ... in order (Lightning's own sampler would shuffle them)."""

    def train_dataloader(self) -> DataLoader:
        t = self.trainer
        assert t is not None
        sampler = DistributedSampler(data(), num_replicas=t.world_size, rank=t.global_rank, shuffle=False)
        return DataLoader(data(), batch_size=8, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return loaders()[1]


def bn_stats(model: nn.Module) -> list[Tensor]:
    """Running means and variances of every batch norm, in order."""
    return [t.detach().clone() for m in model.modules() if isinstance(m, nn.BatchNorm1d)
            for t in (m.running_mean, m.running_var)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--clip-from", type=int, default=None,
                    help="no dropout, and ClipGradients(CLIP_NORM, start_step=this)")
    args = ap.parse_args()
    pl.seed_everything(0)
    model = make_model()
    callbacks: list[pl.Callback] = [PreciseBatchNorm(num_batches=100)]
    if args.clip_from is not None:
        model[3].p = 0.0
        callbacks.append(ClipGradients(CLIP_NORM, start_step=args.clip_from))
    task = BNTask(model, lr=0.05)
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", devices=args.devices,
                         strategy="ddp" if args.devices > 1 else "auto", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=callbacks, use_distributed_sampler=False)
    trainer.fit(task, datamodule=ShardedData())
    Path(args.out).mkdir(parents=True, exist_ok=True)
    torch.save({"stats": bn_stats(task.model), "state": task.model.state_dict()},
               Path(args.out) / f"rank{trainer.global_rank}.pt")
    if torch.distributed.is_initialized():  # a gloo group left open can abort the process at exit
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
