"""Sequence classification: a tiny transformer classifier, its task and a generated dataset.

The generated task: each sequence holds noise tokens and one *signal* token whose id gives the class;
sequences have random lengths (padded). A classifier must find the signal token among the noise, which
attention does in a few epochs.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from attnkit.core.attention import KeyPaddingMask
from attnkit.core.data.distributed import eval_sampler
from attnkit.core.layers import TransformerEncoder, TransformerEncoderLayer
from attnkit.core.models import configurable
from attnkit.core.tasks.base import Task

__all__ = ["SequenceClassificationTask", "SequenceClassifier", "SyntheticSequenceDataModule"]


@configurable
class SequenceClassifier(nn.Module):
    """Token embedding + learned positions + transformer encoder + masked mean pooling + linear head.

    Args:
        vocab_size: number of token ids (0 is padding).
        num_classes: number of classes.
        embed_dim: model width.
        num_heads: attention heads.
        num_layers: encoder layers.
        max_len: longest sequence.
        dropout: dropout rate.
    """

    def __init__(self, vocab_size: int, num_classes: int, embed_dim: int = 32, num_heads: int = 2,
                 num_layers: int = 2, max_len: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.max_len = max_len
        self.tokens = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.positions = nn.Embedding(max_len, embed_dim)
        layer = TransformerEncoderLayer(embed_dim, num_heads, 2 * embed_dim, dropout=dropout)
        self.encoder = TransformerEncoder(layer, num_layers)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Class logits ``(B, C)`` for token ids ``(B, L)`` with valid lengths ``(B,)``."""
        _, n = tokens.shape
        if n > self.max_len:
            raise ValueError(f"sequence length {n} exceeds max_len={self.max_len}")
        x = self.tokens(tokens) + self.positions(torch.arange(n, device=tokens.device))
        x, _ = self.encoder(x, KeyPaddingMask(lengths))
        valid = (torch.arange(n, device=tokens.device) < lengths.unsqueeze(1)).unsqueeze(-1)
        pooled = (x * valid).sum(1) / valid.sum(1).clamp_min(1)
        return self.head(pooled)


class SequenceClassificationTask(Task):
    """Trains a sequence classifier with cross-entropy; reports accuracy.

    Args:
        model: maps ``(tokens (B, L), lengths (B,))`` to logits ``(B, C)``.
        num_classes: number of classes (linked from the data module by the CLI).
        optimizer: builds the optimiser from the parameters.
        scheduler: optional learning-rate scheduler.
    """

    monitor: ClassVar[str] = "val/acc"
    monitor_mode: ClassVar[Literal["min", "max"]] = "max"
    cli_links: ClassVar[dict[str, str]] = {
        "vocab_size": "model.init_args.vocab_size",
        "num_classes": "model.init_args.num_classes",
    }

    def __init__(self, model: nn.Module, num_classes: int = 4, optimizer: OptimizerCallable = torch.optim.Adam,
                 scheduler: LRSchedulerCallable | None = None) -> None:
        super().__init__(model, optimizer, scheduler)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # a metric object (sum of losses and of samples across processes): exact under DDP, where
        # `sync_dist` averages counts in integers and does not split uneven shares exactly

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:  # noqa: D102
        return self.model(tokens, lengths)

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> Tensor:  # noqa: D102
        tokens, lengths, y = batch
        loss = F.cross_entropy(self(tokens, lengths), y)
        self.log_loss("train", loss, len(y))
        return loss

    def _eval(self, batch: tuple[Tensor, Tensor, Tensor], stage: str, metric: MulticlassAccuracy) -> None:
        tokens, lengths, y = batch
        logits = self(tokens, lengths)
        self.log_loss(stage, F.cross_entropy(logits, y), len(y))
        metric.update(logits, y)
        self.log(f"{stage}/acc", metric, prog_bar=stage == "val")

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._eval(batch, "val", self.val_acc)

    def test_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._eval(batch, "test", self.test_acc)

    def predict_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Predicted class ``(B,)`` and class probabilities ``(B, C)`` (``predictions.csv``)."""
        tokens, lengths, _ = batch
        probs = self(tokens, lengths).softmax(-1)
        return {"label": probs.argmax(-1), "prob": probs}


class SyntheticSequenceDataModule(pl.LightningDataModule):
    """Generated sequences: noise tokens plus one signal token whose id is the class.

    Token ids: 0 padding, ``1..num_classes`` signal tokens, the rest noise. The data is a pure function of
    ``seed``, so every process of a DDP run sees the same dataset.

    Args:
        num_samples: training sequences (validation and test get a quarter each).
        seq_len: maximum length; lengths are uniform in ``[seq_len // 2, seq_len]``.
        vocab_size: number of token ids, > ``num_classes + 1``.
        num_classes: number of classes.
        batch_size: per-process batch size.
        shuffle: shuffle training batches.
        seed: generator seed.
    """

    def __init__(self, num_samples: int = 2048, seq_len: int = 32, vocab_size: int = 32, num_classes: int = 4,
                 batch_size: int = 64, shuffle: bool = True, seed: int = 0) -> None:
        super().__init__()
        if vocab_size <= num_classes + 1:
            raise ValueError(f"vocab_size={vocab_size} must exceed num_classes + 1 = {num_classes + 1}")
        if seq_len < 2:
            raise ValueError(f"seq_len must be >= 2, got {seq_len}")
        self.num_samples, self.seq_len = num_samples, seq_len
        self.vocab_size, self.num_classes = vocab_size, num_classes
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.splits: dict[str, TensorDataset] = {}

    def _make(self, n: int, seed: int) -> TensorDataset:
        g = torch.Generator().manual_seed(seed)
        lengths = torch.randint(self.seq_len // 2, self.seq_len + 1, (n,), generator=g)
        tokens = torch.randint(self.num_classes + 1, self.vocab_size, (n, self.seq_len), generator=g)
        labels = torch.randint(0, self.num_classes, (n,), generator=g)
        where = (torch.rand(n, generator=g) * lengths).long()
        tokens[torch.arange(n), where] = labels + 1
        tokens[torch.arange(self.seq_len).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
        return TensorDataset(tokens, lengths, labels)

    def setup(self, stage: str | None = None) -> None:  # noqa: D102
        if not self.splits:
            quarter = max(self.num_samples // 4, 1)
            self.splits = {
                "train": self._make(self.num_samples, self.seed),
                "val": self._make(quarter, self.seed + 1),
                "test": self._make(quarter, self.seed + 2),
            }

    def train_dataloader(self) -> DataLoader:  # noqa: D102
        ds = self.splits["train"]
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            # Lightning would inject a *shuffling* DistributedSampler whatever `shuffle` says; give it ours
            # so `shuffle=False` means the same order as one process (rank r gets samples r, r + W, ...).
            sampler: DistributedSampler[Any] = DistributedSampler(ds, trainer.world_size, trainer.global_rank,
                                                                  shuffle=self.shuffle, seed=self.seed)
            return DataLoader(ds, batch_size=self.batch_size, sampler=sampler)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:  # noqa: D102
        # each sample on exactly one process under DDP (no padded repeats), so metrics are exact
        return DataLoader(self.splits["val"], batch_size=self.batch_size, sampler=eval_sampler(self.splits["val"]))

    def test_dataloader(self) -> DataLoader:  # noqa: D102
        return DataLoader(self.splits["test"], batch_size=self.batch_size,
                          sampler=eval_sampler(self.splits["test"]))

    def predict_dataloader(self) -> DataLoader:  # noqa: D102
        return DataLoader(self.splits["test"], batch_size=self.batch_size)
