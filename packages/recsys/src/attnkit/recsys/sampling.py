"""Vectorised negative sampling: uniform item ids that are not in a user's history."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["contains", "sample_negatives"]


def contains(sorted_history: Tensor, items: Tensor) -> Tensor:
    """Whether each item occurs in its row's history.

    Args:
        sorted_history: ``(B, H)`` item ids sorted ascending per row (padding ``0`` first).
        items: ``(B, ...)`` item ids to look up.

    Returns:
        Bool tensor shaped like ``items``.

    """
    b = items.shape[0]
    flat = items.reshape(b, -1).contiguous()
    if sorted_history.shape[1] == 0:
        return torch.zeros_like(items, dtype=torch.bool)
    idx = torch.searchsorted(sorted_history.contiguous(), flat).clamp_(max=sorted_history.shape[1] - 1)
    return (sorted_history.gather(1, idx) == flat).view_as(items)


def sample_negatives(
    sorted_history: Tensor,
    num_items: int,
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    max_rounds: int = 1000,
    weights: Tensor | None = None,
) -> Tensor:
    """Draw item ids uniformly from ``1..num_items`` excluding each row's history (with replacement).

    This is the SASRec authors' ``random_neq``: a draw that hits the history is redrawn. All rows are
    drawn at once; only the rejected draws are redrawn, round by round.

    Args:
        sorted_history: ``(B, H)`` the items to exclude per row, sorted ascending (``0`` = padding).
        num_items: catalogue size ``N``; ids are ``1..N``.
        shape: trailing shape of the draw per row, e.g. ``(L,)`` or ``(100,)``.
        generator: optional torch generator (CPU) for reproducible draws.
        max_rounds: give up after this many redraw rounds.
        weights: ``(N + 1,)`` non-negative sampling weights per item id (index 0 ignored), e.g. item
            popularity; ``None`` draws uniformly. Items of weight 0 are never drawn.

    Returns:
        ``(B, *shape)`` int64 item ids on the history's device.

    Raises:
        ValueError: a row's history covers the whole catalogue, so no negative exists.

    """
    b = sorted_history.shape[0]
    dev = sorted_history.device

    probs = None
    if weights is not None:
        if weights.shape != (num_items + 1,):
            raise ValueError(f"weights must have shape ({num_items + 1},), got {tuple(weights.shape)}")
        probs = weights.detach().to("cpu", torch.float64).clone()
        probs[0] = 0.0

    def draw(n: int) -> Tensor:
        if probs is not None:
            return torch.multinomial(probs, n, replacement=True, generator=generator).to(dev)
        return torch.randint(1, num_items + 1, (n,), generator=generator).to(dev)

    out = draw(b * int(torch.Size(shape).numel())).view(b, *shape)
    bad = contains(sorted_history, out)
    for _ in range(max_rounds):
        n_bad = int(bad.sum())
        if n_bad == 0:
            return out
        out[bad] = draw(n_bad)
        bad = contains(sorted_history, out)
    if probs is not None:
        raise ValueError(
            f"could not draw negatives after {max_rounds} rounds: some users have interacted with (almost) every "
            "item that has a non-zero sampling weight -- use uniform negatives or drop such users"
        )
    distinct = (sorted_history[:, 1:] != sorted_history[:, :-1]) & (sorted_history[:, 1:] > 0)
    full = (distinct.sum(1) + (sorted_history[:, :1] > 0).squeeze(1)) >= num_items
    raise ValueError(
        f"could not draw negatives after {max_rounds} rounds; {int(full.sum())} user(s) have interacted "
        f"with all {num_items} items, so no negative exists -- drop such users from the data"
    )
