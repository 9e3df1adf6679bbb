"""Ranking metrics (HR@K, NDCG@K, MRR) as torchmetrics, correct under DDP (summed states)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["RankingMetrics", "target_rank"]


def target_rank(scores: Tensor, target: Tensor) -> Tensor:
    """0-based rank of each row's target among its scores (ties count in the target's favour).

    Args:
        scores: ``(B, C)`` candidate scores; ``-inf`` removes a candidate.
        target: ``(B,)`` column of the true item.

    Returns:
        ``(B,)`` int64: how many candidates score strictly higher than the target.

    """
    truth = scores.gather(1, target.view(-1, 1))
    return (scores > truth).sum(1)


class RankingMetrics(Metric):
    """HR@K, NDCG@K (``1 / log2(rank + 2)`` if rank < K) and MRR (``1 / (rank + 1)``), averaged over users.

    States are sums and a count reduced with ``sum`` across processes, so the result under DDP equals
    the single-process result on the union of the batches.

    Args:
        ks: cut-offs ``K``.

    Example:
        >>> m = RankingMetrics(ks=(1, 10))
        >>> m.update(torch.tensor([[0.9, 0.1, 0.5]]), torch.tensor([2]))
        >>> round(float(m.compute()["ndcg@10"]), 4)
        0.6309

    """

    full_state_update = False
    higher_is_better = True
    hits: Tensor
    ndcg: Tensor
    rr: Tensor
    count: Tensor

    def __init__(self, ks: Sequence[int] = (1, 5, 10)) -> None:
        super().__init__()
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks must be positive cut-offs, got {list(ks)}")
        self.ks = tuple(int(k) for k in ks)
        self.add_state("hits", torch.zeros(len(self.ks), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("ndcg", torch.zeros(len(self.ks), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("rr", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: Tensor, target: Tensor) -> None:
        """Add a batch: ``scores (B, C)``, ``target (B,)`` column index of the true item."""
        if scores.dim() != 2 or target.shape != scores.shape[:1]:
            raise ValueError(f"expected scores (B, C) and target (B,), got {tuple(scores.shape)} and "
                             f"{tuple(target.shape)}")
        self.update_ranks(target_rank(scores, target))

    def update_ranks(self, ranks: Tensor) -> None:
        """Add precomputed 0-based ranks ``(B,)``."""
        r = ranks.to(torch.float64).view(-1, 1)
        k = torch.tensor(self.ks, dtype=torch.float64, device=r.device).view(1, -1)
        hit = r < k
        self.hits += hit.sum(0)
        self.ndcg += (hit / torch.log2(r + 2.0)).sum(0)
        self.rr += (1.0 / (r + 1.0)).sum()
        self.count += r.shape[0]

    def compute(self) -> dict[str, Tensor]:
        """``{"hr@K", "ndcg@K", ..., "mrr"}`` as float tensors."""
        n = self.count.clamp(min=1)
        out: dict[str, Tensor] = {}
        for i, k in enumerate(self.ks):
            out[f"hr@{k}"] = (self.hits[i] / n).float()
            out[f"ndcg@{k}"] = (self.ndcg[i] / n).float()
        out["mrr"] = (self.rr / n).float()
        return out
