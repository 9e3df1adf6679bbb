"""Samplers for data split across processes: exact evaluation shares and the process's rank.

Lightning injects a ``DistributedSampler`` into training loaders under DDP (distinct shuffled shares,
seeded by ``seed_everything``, re-shuffled per epoch through ``set_epoch``). For evaluation the same
sampler would pad the last share with repeated samples, so metrics under N processes would count some
samples twice. :func:`eval_sampler` gives each sample to exactly one process instead; a data module passes
it to its validation/test/predict loaders, and Lightning keeps it (it is a ``DistributedSampler``).
"""

from __future__ import annotations

import os
from collections.abc import Sized

import torch.distributed as dist
from torch.utils.data import DistributedSampler

__all__ = ["eval_sampler", "global_seed", "world"]


def world() -> tuple[int, int]:
    """``(world_size, rank)`` of the initialised process group, ``(1, 0)`` in a single process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def global_seed(default: int = 0) -> int:
    """The seed ``seed_everything`` set (``PL_GLOBAL_SEED``), the one Lightning's samplers use; else ``default``."""
    return int(os.environ.get("PL_GLOBAL_SEED", default))


def eval_sampler(dataset: Sized) -> DistributedSampler[int] | None:
    """An unpadded, unshuffled share of ``dataset`` for this process, or ``None`` in a single process.

    Rank ``r`` of ``W`` gets samples ``r, r + W, ...``: every sample exactly once across processes (shares
    may differ by one sample). Metrics whose states are sums or concatenations, reduced across processes,
    then equal the single-process metrics.
    """
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    size, rank = world()
    if size == 1:
        return None
    if len(dataset) < size:
        raise ValueError(
            f"{len(dataset)} evaluation samples cannot be shared by {size} processes (each needs at least "
            "one); evaluate with fewer devices or a larger evaluation split"
        )
    return UnrepeatedDistributedSampler(dataset, num_replicas=size, rank=rank, shuffle=False)
