"""Macro ROC-AUC / PR-AUC over tags against scikit-learn."""

from __future__ import annotations

import math

import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from attnkit.audio.tagging import TagAUC
from attnkit.audio.tagging.metrics import format_tag_table


def test_tag_auc_matches_sklearn_and_skips_undefined_tags() -> None:
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(40, 4, generator=g) < 0.3).long()
    y[:, 3] = 0  # a tag with no positive: undefined, left out
    p = (0.6 * y + torch.rand(40, 4, generator=g)).clamp(0, 1)
    m = TagAUC(4)
    m.update(p[:25], y[:25])
    m.update(p[25:], y[25:])
    res = m.compute()
    ref_roc = roc_auc_score(y[:, :3].numpy(), p[:, :3].numpy(), average="macro")
    ref_ap = average_precision_score(y[:, :3].numpy(), p[:, :3].numpy(), average="macro")
    assert math.isclose(float(res["roc_auc"]), ref_roc, abs_tol=1e-6)
    assert math.isclose(float(res["pr_auc"]), ref_ap, abs_tol=1e-6)
    assert int(res["undefined"]) == 1
    table = format_tag_table(["a", "b", "c", "d"], m.per_tag())
    assert table.splitlines()[-1].startswith("| d | 0 | n/a")
