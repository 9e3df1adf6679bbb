from __future__ import annotations

import math

import pytest
import torch

from attnkit.recsys import RankingMetrics
from attnkit.recsys.losses import bce_loss, gbce_beta, gbce_loss, sampled_softmax_loss
from attnkit.recsys.metrics import target_rank
from attnkit.recsys.tasks.next_item import full_ranking_scores


def test_ranks_and_values_by_hand() -> None:
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3],    # target col 2 -> rank 1
                           [0.2, 0.8, 0.1, 0.0],    # target col 1 -> rank 0
                           [0.0, 0.1, 0.2, 0.3]])   # target col 0 -> rank 3
    target = torch.tensor([2, 1, 0])
    assert target_rank(scores, target).tolist() == [1, 0, 3]
    m = RankingMetrics(ks=(1, 2))
    m.update(scores, target)
    out = m.compute()
    assert out["hr@1"].item() == pytest.approx(1 / 3)
    assert out["hr@2"].item() == pytest.approx(2 / 3)
    assert out["ndcg@2"].item() == pytest.approx((1 / math.log2(3) + 1.0) / 3)  # NDCG = 1/log2(rank+2)
    assert out["mrr"].item() == pytest.approx((1 / 2 + 1 + 1 / 4) / 3)


def test_masked_candidates_do_not_count() -> None:
    s = full_ranking_scores(torch.tensor([[0.0, 5.0, 4.0, 1.0, 3.0]]), torch.tensor([[0, 1, 3]]),
                            target=torch.tensor([3]))
    assert s[0].tolist() == [float("-inf"), float("-inf"), 4.0, 1.0, 3.0]  # target 3 kept though seen
    assert target_rank(s, torch.tensor([3])).item() == 2


def test_states_merge_like_ddp() -> None:
    """DDP syncs each state with its dist_reduce_fx (sum); merging two shards equals one process."""
    torch.manual_seed(0)
    scores, target = torch.randn(50, 30), torch.randint(0, 30, (50,))
    whole, a, b = RankingMetrics(), RankingMetrics(), RankingMetrics()
    whole.update(scores, target)
    a.update(scores[:17], target[:17])
    b.update(scores[17:], target[17:])
    a.merge_state(b)
    for k, v in whole.compute().items():
        torch.testing.assert_close(a.compute()[k], v)
    assert set(whole._reductions) == {"hits", "ndcg", "rr", "count"}
    assert len({id(r) for r in whole._reductions.values()}) == 1  # one reduction (sum) for every state


def test_bad_metric_input() -> None:
    with pytest.raises(ValueError, match="ks must be positive"):
        RankingMetrics(ks=(0,))
    with pytest.raises(ValueError, match=r"expected scores \(B, C\) and target \(B,\)"):
        RankingMetrics().update(torch.zeros(3), torch.zeros(3, dtype=torch.long))


def test_losses() -> None:
    pos, neg = torch.tensor([2.0, -1.0]), torch.tensor([[0.5], [1.5]])
    ref = -(torch.log(torch.sigmoid(pos)) + torch.log(1 - torch.sigmoid(neg[:, 0]))).mean()
    torch.testing.assert_close(bce_loss(pos, neg), ref)
    torch.testing.assert_close(gbce_loss(pos, neg, 1.0), ref)  # beta = 1 is BCE
    # gSASRec: alpha = K/(N-1); t = 0 gives beta = 1, t = 1 gives beta = alpha
    assert gbce_beta(256, 1001, 0.0) == pytest.approx(1.0)
    assert gbce_beta(256, 1001, 1.0) == pytest.approx(256 / 1000)
    sm = sampled_softmax_loss(pos, neg)
    torch.testing.assert_close(sm, torch.nn.functional.cross_entropy(torch.stack([pos, neg[:, 0]], 1),
                                                                     torch.zeros(2, dtype=torch.long)))
