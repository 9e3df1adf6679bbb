"""Song-level tagging metrics: macro ROC-AUC and PR-AUC over tags, and the per-tag table."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_auroc, binary_average_precision
from torchmetrics.utilities import dim_zero_cat

__all__ = ["TagAUC", "format_tag_table"]


class TagAUC(Metric):
    """ROC-AUC and PR-AUC (average precision) per tag, macro-averaged over tags, as in the MTAT benchmark.

    A tag with no positive (or no negative) example in the evaluated set has no defined AUC; it is left out
    of the macro average and counted in ``"undefined"`` (sklearn's ``roc_auc_score`` would raise instead).

    ``update(probs (S, K), targets (S, K))``; ``compute()`` returns a dict with ``roc_auc``, ``pr_auc``
    (macro means) and ``undefined`` (number of tags left out); :meth:`per_tag` returns ``(K,)`` tensors with
    NaN for undefined tags.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    probs: list[Tensor]  # metric states (add_state), concatenated across processes on sync
    targets: list[Tensor]

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(self, probs: Tensor, targets: Tensor) -> None:
        """Add song-level probabilities and 0/1 targets, both ``(S, K)``."""
        if probs.shape != targets.shape or probs.dim() != 2 or probs.shape[1] != self.num_tags:
            raise ValueError(
                f"expected probs and targets of shape (S, {self.num_tags}), got {tuple(probs.shape)} "
                f"and {tuple(targets.shape)}"
            )
        self.probs.append(probs.detach().float())
        self.targets.append(targets.detach().long())

    def per_tag(self) -> dict[str, Tensor]:
        """``{"roc_auc": (K,), "pr_auc": (K,), "positives": (K,)}``; NaN where undefined."""
        p, t = dim_zero_cat(self.probs), dim_zero_cat(self.targets)
        roc = torch.full((self.num_tags,), float("nan"))
        ap = torch.full((self.num_tags,), float("nan"))
        pos = t.sum(0) if t.numel() else torch.zeros(self.num_tags, dtype=torch.long)
        for k in range(self.num_tags):
            if 0 < int(pos[k]) < t.shape[0]:
                roc[k] = binary_auroc(p[:, k], t[:, k]).cpu()
                ap[k] = binary_average_precision(p[:, k], t[:, k]).cpu()
        return {"roc_auc": roc, "pr_auc": ap, "positives": pos.cpu()}

    def compute(self) -> dict[str, Tensor]:
        """Macro ROC-AUC and PR-AUC over the tags where they are defined."""
        d = self.per_tag()
        ok = ~torch.isnan(d["roc_auc"])
        nan = torch.tensor(float("nan"))
        return {
            "roc_auc": d["roc_auc"][ok].mean() if ok.any() else nan,
            "pr_auc": d["pr_auc"][ok].mean() if ok.any() else nan,
            "undefined": (~ok).sum().float(),
        }


def format_tag_table(tags: Sequence[str], per_tag: dict[str, Tensor]) -> str:
    """Format a Markdown table: tag, positives, ROC-AUC, PR-AUC (sorted by ROC-AUC, undefined last)."""
    rows = []
    for i, t in enumerate(tags):
        roc, ap = float(per_tag["roc_auc"][i]), float(per_tag["pr_auc"][i])
        rows.append((t, int(per_tag["positives"][i]), roc, ap))
    rows.sort(key=lambda r: (r[2] != r[2], -r[2] if r[2] == r[2] else 0.0, r[0]))
    lines = ["| tag | positives | ROC-AUC | PR-AUC |", "|---|---:|---:|---:|"]
    for t, n, roc, ap in rows:
        f = lambda v: "n/a" if v != v else f"{v:.3f}"
        lines.append(f"| {t} | {n} | {f(roc)} | {f(ap)} |")
    return "\n".join(lines)
