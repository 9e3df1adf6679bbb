"""A training loader that a resumed run continues exactly where the interrupted one stopped, mid-epoch too.

Lightning restores a run's weights, optimiser and loop counters from a checkpoint, but a plain
``DataLoader`` restarts its epoch from the first batch while the loop goes on counting from the batch it
had reached ("You're resuming from a checkpoint that ended before the epoch ended and your dataloader is
not resumable"): after a mid-epoch resume the epoch's first batches are trained on twice and its last ones
never. :class:`ResumableLoader` implements Lightning's ``state_dict`` / ``load_state_dict`` interface for
training loaders: checkpoints hold the epoch and the number of batches it has yielded in it, and the resumed
run's sampler skips those, so it trains on the batches the uninterrupted run would have. A model that draws
no random numbers in a training step (the vision models) then repeats the uninterrupted run bit for bit;
dropout draws from the global random state, which Lightning does not restore on resume.

Limitation: with ``limit_train_batches`` below the loader's length *and* loader workers, a checkpoint written
at the end of such a shortened epoch makes the resumed run start the next epoch at the wrong position (the
loader cannot tell that epoch from an unfinished one; without workers the sampler sees the new epoch and does
not skip).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from torch.utils.data import DataLoader

__all__ = ["ResumableLoader", "SkippableSampler"]


@runtime_checkable
class SkippableSampler(Protocol):
    """A sampler whose order is a function of its epoch that can start an iteration further in.

    ``skip_next(epoch, n)``: in the next iteration, if it is one of ``epoch``, leave out the first ``n``
    items of this process's share; ``skipped``: how many the current iteration left out.
    """

    epoch: int
    skipped: int

    def set_epoch(self, epoch: int) -> None:
        """Order the next iterations as epoch ``epoch``."""

    def skip_next(self, epoch: int, n: int) -> None:
        """Leave out the first ``n`` items of the next iteration if it is one of ``epoch``."""


class ResumableLoader(DataLoader[Any]):
    """A training ``DataLoader`` whose position within the epoch is saved in checkpoints and restored.

    Takes the arguments of ``DataLoader``, with a ``sampler`` that follows :class:`SkippableSampler` (for
    example :class:`attnkit.vision.data.datasets.PatchSampler`) and an integer ``batch_size``. Lightning
    saves :meth:`state_dict` (the sampler's epoch and the batches yielded in it) with every checkpoint and
    calls :meth:`load_state_dict` before a resumed run's first batch; the sampler then skips the batches
    already trained on. An epoch whose every batch was yielded resumes at the next epoch's first batch.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, SkippableSampler):
            raise TypeError(
                f"ResumableLoader needs a sampler with set_epoch, skip_next and skipped (e.g. PatchSampler), "
                f"got {type(self.sampler).__name__}; use a plain DataLoader for this data"
            )
        if not isinstance(self.batch_size, int):
            raise TypeError("ResumableLoader needs an integer batch_size (it counts batches to skip)")
        self._yielded = 0
        self._resume: tuple[int, int] | None = None

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        """Iterate one epoch; after :meth:`load_state_dict`, from the batch the checkpointed run had reached."""
        sampler: SkippableSampler = self.sampler  # type: ignore[assignment]
        if self._resume is not None:
            sampler.skip_next(*self._resume)
            self._resume = None
        self._yielded = 0
        return self._counted(super().__iter__())

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        sampler: SkippableSampler = self.sampler  # type: ignore[assignment]
        first = True
        for batch in batches:
            if first:  # the sampler has started: it knows what it left out
                self._yielded = sampler.skipped // int(self.batch_size)  # type: ignore[arg-type]
                first = False
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """The sampler's epoch and the number of batches of it this loader has yielded."""
        return {"epoch": int(self.sampler.epoch), "batches": self._yielded}  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Have the next iteration skip the batches that ``state`` says were already trained on."""
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):
            epoch, batches = epoch + 1, 0
        # Loader workers draw their first indices when the iterator is made, before Lightning sets the epoch.
        self.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        self._resume = (epoch, batches * int(self.batch_size)) if batches else None  # type: ignore[arg-type]
