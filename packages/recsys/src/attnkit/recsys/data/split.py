"""Leave-one-out split as in the SASRec authors' ``data_partition``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnkit.recsys.data.formats import SequenceData

__all__ = ["LeaveOneOut", "leave_one_out"]


@dataclass
class LeaveOneOut:
    """Per-user leave-one-out split.

    Attributes:
        train: training items per user (all items for users with fewer than 3 actions).
        valid: the second-to-last item per user, ``0`` when the user has fewer than 3 actions.
        test: the last item per user, ``0`` when the user has fewer than 3 actions.
        num_items: catalogue size.
        user_ids: source user id per row.

    """

    train: list[np.ndarray]
    valid: np.ndarray
    test: np.ndarray
    num_items: int
    user_ids: np.ndarray

    @property
    def evaluated(self) -> np.ndarray:
        """Row indices of users that have a validation and a test item."""
        return np.flatnonzero(self.test > 0)


def leave_one_out(data: SequenceData) -> LeaveOneOut:
    """Split each user's sequence: last item = test, second-to-last = validation, the rest = train.

    Users with fewer than 3 actions keep all of them for training and are not evaluated (as in the
    authors' code). The split is deterministic (no randomness).
    """
    n = data.num_users
    valid = np.zeros(n, dtype=np.int64)
    test = np.zeros(n, dtype=np.int64)
    train: list[np.ndarray] = []
    for u, s in enumerate(data.sequences):
        if len(s) < 3:
            train.append(s)
        else:
            train.append(s[:-2])
            valid[u], test[u] = s[-2], s[-1]
    return LeaveOneOut(train, valid, test, data.num_items, data.user_ids)
