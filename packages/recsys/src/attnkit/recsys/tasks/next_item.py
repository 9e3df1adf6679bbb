"""NextItemTask: trains and evaluates a sequential recommender on next-item prediction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from attnkit.core.tasks.base import Task
from attnkit.recsys.losses import bce_loss, gbce_beta, gbce_loss, sampled_softmax_loss
from attnkit.recsys.metrics import RankingMetrics
from attnkit.recsys.sampling import sample_negatives

__all__ = ["NextItemTask", "encode_by_length", "full_ranking_scores"]

Loss = Literal["bce", "sampled_softmax", "ce", "gbce"]
_DEFAULT_NEGATIVES = {"bce": 1, "sampled_softmax": 100, "gbce": 256, "ce": 0}


def full_ranking_scores(scores: Tensor, history: Tensor, target: Tensor | None = None) -> Tensor:
    """Mask padding and already-seen items for full-catalogue ranking.

    Args:
        scores: ``(B, N + 1)`` scores of all items (column 0 = padding).
        history: ``(B, H)`` items to exclude, ``0`` = padding.
        target: ``(B,)`` true items, kept even when they occur in the history.

    Returns:
        A masked copy of ``scores`` (excluded entries are ``-inf``).

    """
    out = scores.clone()
    keep = out.gather(1, target.view(-1, 1)) if target is not None else None
    out.scatter_(1, history, float("-inf"))
    out[:, 0] = float("-inf")
    if target is not None and keep is not None:
        out.scatter_(1, target.view(-1, 1), keep)
    return out


def encode_by_length(model: nn.Module, seq: Tensor, buckets: Sequence[int]) -> Tensor:
    """Run ``model`` on left-padded ``seq (B, L)`` in groups of similar length, trimmed of padding.

    The output equals ``model(seq)`` at every non-padding position (a left-padded row cut to its last
    ``l`` columns keeps its items at the same right-aligned positions) and is ``0`` at padding positions;
    the compute falls with the padding (most Amazon users have a handful of items, ``L`` is 50).

    Args:
        model: maps ``(b, l)`` item ids to ``(b, l, D)`` for any ``l <= L``.
        seq: ``(B, L)`` item ids, ``0`` = padding on the left.
        buckets: increasing length boundaries; rows with ``length <= buckets[i]`` share a group.

    Returns:
        ``(B, L, D)`` hidden states.

    """
    lengths = (seq != 0).sum(1)
    big_l = seq.shape[1]
    bounds = [b for b in buckets if b < big_l] + [big_l]
    out: Tensor | None = None
    low = -1
    for high in bounds:
        rows = torch.nonzero((lengths > low) & (lengths <= high)).flatten()
        low = high
        if rows.numel() == 0:
            continue
        width = max(int(lengths[rows].max()), 1)
        h = model(seq[rows, big_l - width:])
        if out is None:
            out = h.new_zeros(seq.shape[0], big_l, h.shape[-1])
        out[rows, big_l - width:] = h
    assert out is not None
    return out


class NextItemTask(Task):
    """Trains a sequential recommender on next-item prediction and ranks held-out items.

    The model maps left-padded item ids ``(B, L)`` to hidden states ``(B, L, D)`` and exposes
    ``item_embeddings`` ``(N + 1, D)`` and ``num_items`` (as :class:`~attnkit.recsys.SASRec` does).

    Evaluation reports the sampled protocol (the true item against the batch's ``candidates``: the data
    module's ``num_eval_negatives`` negatives, 100 in the paper) as ``{stage}/hr@K``, ``{stage}/ndcg@K``,
    ``{stage}/mrr``, and with ``full_ranking`` also the ranking over all items minus the user's history as
    ``{stage}/full_hr@K``, ... At test start the data module's protocol is printed in one line. With
    ``baselines`` the test also ranks the same candidates by training popularity (most-popular) and logs
    ``test/baseline_most_popular/<metric>`` next to the model's metrics.

    Args:
        model: the sequence encoder.
        loss: ``bce`` (the paper: one sampled negative per position), ``sampled_softmax`` (softmax over the
            positive and ``num_negatives`` uniform negatives shared by a sequence), ``ce`` (softmax over the
            whole catalogue) or ``gbce`` (gSASRec's generalised BCE with ``num_negatives`` negatives).
        num_negatives: negatives per position (``bce``) or per sequence (``sampled_softmax``, ``gbce``);
            default 1, 100 and 256. Negatives never come from the user's training history.
        gbce_t: gBCE calibration ``t`` in ``[0, 1]`` (0.75 in the gSASRec paper).
        ks: cut-offs for HR and NDCG.
        full_ranking: also evaluate by ranking the whole catalogue.
        top_k: items per user returned by ``predict``.
        baselines: at test, also score the most-popular baseline on the same users and candidates (ties in
            popularity are broken by a fixed random order, so a tie is not a win for the true item).
        length_buckets: run the model on groups of similar length trimmed of padding (same result, less
            compute; see :func:`encode_by_length`); ``None`` runs each batch padded to ``L``.
        optimizer: builds the optimiser from the parameters.
        scheduler: optional learning-rate scheduler.

    """

    cli_links: ClassVar[dict[str, str]] = {
        "num_items": "model.init_args.num_items",
        "max_len": "model.init_args.max_len",
    }
    monitor: ClassVar[str] = "val/ndcg@10"
    monitor_mode: ClassVar[Literal["min", "max"]] = "max"

    def __init__(
        self,
        model: nn.Module,
        loss: Loss = "bce",
        num_negatives: int | None = None,
        gbce_t: float = 0.75,
        ks: Sequence[int] = (1, 5, 10),
        full_ranking: bool = False,
        top_k: int = 10,
        length_buckets: Sequence[int] | None = (8, 16, 32),
        baselines: bool = False,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(model, optimizer, scheduler)
        if loss not in _DEFAULT_NEGATIVES:
            raise ValueError(f"unknown loss {loss!r}; choose bce, sampled_softmax, ce or gbce")
        for attr in ("item_embeddings", "num_items"):
            if not hasattr(model, attr):
                raise TypeError(f"model {type(model).__name__} has no `{attr}`; NextItemTask needs a model "
                                "like attnkit.recsys.SASRec that scores items with an embedding table")
        k = _DEFAULT_NEGATIVES[loss] if num_negatives is None else int(num_negatives)
        if loss != "ce" and k < 1:
            raise ValueError(f"num_negatives must be >= 1 for loss {loss!r}, got {num_negatives}")
        if not 0.0 <= gbce_t <= 1.0:
            raise ValueError(f"gbce_t must be in [0, 1], got {gbce_t}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.loss_name, self.num_negatives, self.gbce_t = loss, k, gbce_t
        self.full_ranking, self.top_k = full_ranking, top_k
        self.ks = tuple(ks)
        self.length_buckets = tuple(length_buckets) if length_buckets else None
        self.baselines = baselines
        self.metrics = nn.ModuleDict({
            "val": RankingMetrics(self.ks), "test": RankingMetrics(self.ks),
            "val_full": RankingMetrics(self.ks), "test_full": RankingMetrics(self.ks),
            "test_pop": RankingMetrics(self.ks), "test_pop_full": RankingMetrics(self.ks),
        })
        self._popularity: Tensor | None = None

    @property
    def num_items(self) -> int:
        """Catalogue size of the model."""
        return int(self.model.num_items)  # type: ignore[arg-type]

    def forward(self, seq: Tensor) -> Tensor:
        """Hidden states ``(B, L, D)`` of left-padded ``seq (B, L)`` (padding positions may differ)."""
        if self.length_buckets is None:
            return self.model(seq)
        return encode_by_length(self.model, seq, self.length_buckets)

    # ------------------------------------------------------------------ training
    def compute_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Compute the loss of a batch: ``seq``, ``pos`` ``(B, L)`` and sorted ``history`` ``(B, H)``."""
        seq, pos, hist = batch["seq"], batch["pos"], batch["history"]
        h = self(seq)
        emb: Tensor = self.model.item_embeddings  # type: ignore[assignment]
        m = pos != 0
        hp = h[m]  # (P, D)
        if self.loss_name == "ce":
            return F.cross_entropy(hp @ emb[1:].T, pos[m] - 1)  # softmax over items 1..N
        pos_logit = (hp * emb[pos[m]]).sum(-1)
        n = self.num_items
        if self.loss_name == "bce":
            neg = sample_negatives(hist, n, (seq.shape[1], self.num_negatives))  # (B, L, K)
            neg_logit = (hp.unsqueeze(1) * emb[neg[m]]).sum(-1)  # (P, K)
            return bce_loss(pos_logit, neg_logit)
        neg = sample_negatives(hist, n, (self.num_negatives,))  # (B, K), shared by the sequence
        neg_logit = torch.einsum("bld,bkd->blk", h, emb[neg])[m]  # (P, K)
        if self.loss_name == "sampled_softmax":
            return sampled_softmax_loss(pos_logit, neg_logit)
        return gbce_loss(pos_logit, neg_logit, gbce_beta(self.num_negatives, n, self.gbce_t))

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:  # noqa: D102
        loss = self.compute_loss(batch)
        self.log_loss("train", loss, batch["seq"].shape[0])
        return loss

    # ------------------------------------------------------------------ evaluation
    def _metric(self, key: str) -> RankingMetrics:
        m = self.metrics[key]
        assert isinstance(m, RankingMetrics)
        return m

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        h = self(batch["seq"])[:, -1]  # (B, D)
        emb: Tensor = self.model.item_embeddings  # type: ignore[assignment]
        cands = batch["candidates"]
        sampled = (emb[cands] * h.unsqueeze(1)).sum(-1)  # (B, 1 + n), truth in column 0
        self._metric(stage).update(sampled, torch.zeros(len(cands), dtype=torch.long, device=cands.device))
        if self.full_ranking:
            full = full_ranking_scores(h @ emb.T, batch["history"], batch["target"])
            self._metric(f"{stage}_full").update(full, batch["target"])
        if stage == "test" and self._popularity is not None:
            pop = self._popularity.to(cands.device)
            self._metric("test_pop").update(pop[cands], torch.zeros(len(cands), dtype=torch.long, device=cands.device))
            if self.full_ranking:
                full = full_ranking_scores(pop.expand(len(cands), -1), batch["history"], batch["target"])
                self._metric("test_pop_full").update(full, batch["target"])

    def _log_metrics(self, stage: str) -> None:
        groups = [(stage, f"{stage}/"), (f"{stage}_full", f"{stage}/full_")]
        if stage == "test":
            base = "test/baseline_most_popular/"
            groups += [("test_pop", base), ("test_pop_full", f"{base}full_")]
        for key, prefix in groups:
            metric = self._metric(key)
            if not metric.update_called:
                continue
            for name, value in metric.compute().items():
                self.log(f"{prefix}{name}", value, prog_bar=name == "ndcg@10" and prefix == f"{stage}/")
            metric.reset()

    def on_test_start(self) -> None:
        """Print the evaluation protocol; with ``baselines``, fetch the training popularity of every item."""
        from lightning.pytorch.utilities import rank_zero_info

        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "protocol"):
            rank_zero_info(f"attnkit test protocol -- {dm.protocol}")
        self._popularity = None
        if self.baselines:
            if dm is None or not hasattr(dm, "item_popularity"):
                raise ValueError("baselines=True needs a data module with item_popularity() (SequentialDataModule)")
            counts = torch.as_tensor(dm.item_popularity(), dtype=torch.float64)
            if counts.shape[0] != self.num_items + 1:
                raise ValueError(f"the data has {counts.shape[0] - 1} items but the model {self.num_items}")
            # a fixed random order among equally popular items, so a tie is never a free hit for the truth
            jitter = torch.rand(counts.shape[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
            self._popularity = (counts + 0.5 * jitter).to(self.device)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        self._log_metrics("val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:  # noqa: D102
        self._log_metrics("test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Top-``top_k`` unseen items per user: ``{"user" (B,), "items" (B, k), "scores" (B, k)}``."""
        h = self(batch["seq"])[:, -1]
        emb: Tensor = self.model.item_embeddings  # type: ignore[assignment]
        scores = full_ranking_scores(h @ emb.T, batch["history"])
        top = scores.topk(min(self.top_k, self.num_items), dim=-1)
        return {"user": batch["user"], "items": top.indices, "scores": top.values}

    def write_predictions(self, predictions: Sequence[Any], directory: Path, suffix: str = "") -> list[Path]:
        """Write ``predictions{suffix}.csv``: ``user,rank,item,score`` with the dataset's own ids."""
        from attnkit.recsys.tasks.writer import write_top_k

        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        rows = [p for p in predictions if p]
        if not rows:
            return []
        return [write_top_k(rows, directory / f"predictions{suffix}.csv", dm)]
