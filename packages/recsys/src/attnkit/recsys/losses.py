"""Next-item losses on positive / negative logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["bce_loss", "gbce_beta", "gbce_loss", "sampled_softmax_loss"]


def bce_loss(pos: Tensor, neg: Tensor) -> Tensor:
    """Binary cross-entropy with sampled negatives (SASRec): ``-log σ(s+) - Σ log(1 - σ(s-))``, averaged.

    Args:
        pos: ``(P,)`` logits of the true next items.
        neg: ``(P, K)`` logits of ``K`` negatives per position.

    """
    return (F.softplus(-pos) + F.softplus(neg).sum(-1)).mean()


def gbce_beta(num_negatives: int, num_items: int, t: float) -> float:
    """Return the gBCE exponent ``β = α (t (1 - 1/α) + 1/α)`` with sampling rate ``α = K / (N - 1)``."""
    alpha = num_negatives / max(num_items - 1, 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def gbce_loss(pos: Tensor, neg: Tensor, beta: float) -> Tensor:
    """Generalised BCE (Petrov & Macdonald, RecSys 2023): ``-β log σ(s+) - Σ log(1 - σ(s-))``, averaged.

    Args:
        pos: ``(P,)`` positive logits.
        neg: ``(P, K)`` negative logits.
        beta: from :func:`gbce_beta`; ``β = 1`` is plain BCE.

    """
    return (beta * F.softplus(-pos) + F.softplus(neg).sum(-1)).mean()


def sampled_softmax_loss(pos: Tensor, neg: Tensor) -> Tensor:
    """Softmax cross-entropy of the positive against ``K`` uniform negatives.

    Args:
        pos: ``(P,)`` positive logits.
        neg: ``(P, K)`` negative logits.

    """
    logits = torch.cat([pos.unsqueeze(-1), neg], dim=-1)
    return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long, device=pos.device))
