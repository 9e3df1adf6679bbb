"""Artificial missingness on observed values: MCAR points, blocks and whole sub-sequences.

All functions take the observed mask ``(B, L, F)`` (``True`` = observed) on any device and return a bool
mask of the same shape marking the observed values to hide. Pass a seeded :class:`torch.Generator`
on the same device for reproducible (evaluation) masks; training masks are drawn per batch on the device.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["MissingPattern", "block_mask", "hide", "mcar_mask", "mcar_mask_exact", "subsequence_mask"]

MissingPattern = Literal["mcar", "block", "subseq"]


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"missing rate must be in [0, 1), got {rate}")


def mcar_mask(observed: Tensor, rate: float, generator: torch.Generator | None = None) -> Tensor:
    """Hide each observed value independently with probability ``rate`` (missing completely at random)."""
    _check_rate(rate)
    u = torch.rand(observed.shape, generator=generator, device=observed.device)
    return observed & (u < rate)


def mcar_mask_exact(observed: Tensor, rate: float, generator: torch.Generator | None = None) -> Tensor:
    """Hide exactly ``round(rate * n_observed)`` observed values, uniformly without replacement.

    This is the paper's hold-out for validation and test (10% of all observed values of the set).
    """
    _check_rate(rate)
    idx = observed.reshape(-1).nonzero().squeeze(1)
    k = round(rate * idx.numel())
    perm = torch.randperm(idx.numel(), generator=generator, device=observed.device)[:k]
    out = torch.zeros(observed.numel(), dtype=torch.bool, device=observed.device)
    out[idx[perm]] = True
    return out.view(observed.shape)


def block_mask(observed: Tensor, rate: float, block_len: int = 6, block_width: int = 1,
               generator: torch.Generator | None = None) -> Tensor:
    """Hide rectangular blocks of ``block_len`` steps x ``block_width`` features.

    Block corners are drawn so that about ``rate`` of all cells are covered; only observed values are hidden.
    """
    _check_rate(rate)
    b, length, f = observed.shape
    block_len, block_width = min(block_len, length), min(block_width, f)
    p = rate / (block_len * block_width)
    starts = torch.rand((b, 1, length, f), generator=generator, device=observed.device) < p
    # dilate each start forward in time and across features with max-pooling
    hidden = torch.nn.functional.max_pool2d(
        torch.nn.functional.pad(starts.float(), (block_width - 1, 0, block_len - 1, 0)),
        kernel_size=(block_len, block_width), stride=1,
    )
    return observed & hidden.squeeze(1).bool()


def subsequence_mask(observed: Tensor, rate: float, generator: torch.Generator | None = None) -> Tensor:
    """Hide one contiguous run of ``round(rate * L)`` steps per series and feature (at least one step)."""
    _check_rate(rate)
    b, length, f = observed.shape
    run = max(1, round(rate * length))
    start = torch.randint(0, length - run + 1, (b, 1, f), generator=generator, device=observed.device)
    t = torch.arange(length, device=observed.device).view(1, length, 1)
    return observed & (t >= start) & (t < start + run)


def hide(observed: Tensor, rate: float, pattern: MissingPattern = "mcar",
         generator: torch.Generator | None = None) -> Tensor:
    """Dispatch to :func:`mcar_mask`, :func:`block_mask` or :func:`subsequence_mask`."""
    if pattern == "mcar":
        return mcar_mask(observed, rate, generator)
    if pattern == "block":
        return block_mask(observed, rate, generator=generator)
    if pattern == "subseq":
        return subsequence_mask(observed, rate, generator)
    raise ValueError(f"unknown missingness pattern {pattern!r}; choose 'mcar', 'block' or 'subseq'")
