from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from attnkit.core import record_backends
from attnkit.recsys import SASRec, sasrec_ml1m, sasrec_paper


def _model(**kw) -> SASRec:
    torch.manual_seed(0)
    return SASRec(num_items=kw.pop("num_items", 20), embed_dim=8, num_heads=kw.pop("num_heads", 2),
                  max_len=kw.pop("max_len", 6), **kw).eval()


def _reference(m: SASRec, seq: Tensor) -> Tensor:
    """SASRec written out from the paper / authors' code with plain torch ops (float64)."""
    m = m.double()
    b, n = seq.shape
    d = m.embed_dim
    valid = (seq != 0).double().unsqueeze(-1)
    x = (m.item_emb.weight[seq] * math.sqrt(d) + m.pos_emb.weight[m.max_len - n:]) * valid
    causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
    for blk in m.blocks:
        q_in = F.layer_norm(x, (d,), blk.attn_norm.weight, blk.attn_norm.bias, 1e-8)  # LN(queries) only
        h = blk.attn.num_heads
        q = blk.attn.q_proj(q_in).view(b, n, h, -1).transpose(1, 2)
        k, v = blk.attn.kv_proj(x).view(b, n, 2, h, -1).unbind(2)  # keys/values from the un-normalised x
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        allowed = causal & (seq != 0).view(b, 1, 1, n)
        s = s.masked_fill(~allowed, float("-inf"))
        w = torch.nan_to_num(torch.softmax(s, -1))
        a = (w @ v).transpose(1, 2).reshape(b, n, -1)
        x = q_in + a
        y = F.layer_norm(x, (d,), blk.ffn_norm.weight, blk.ffn_norm.bias, 1e-8)
        x = (y + blk.ffn[3](torch.relu(blk.ffn[0](y)))) * valid
    return F.layer_norm(x, (d,), m.final_norm.weight, m.final_norm.bias, 1e-8)


def test_matches_the_paper_reference_in_float64() -> None:
    m = _model()
    seq = torch.tensor([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 7]])
    with torch.no_grad():
        ref = _reference(m, seq)
        out = m.double()(seq)
    keep = seq != 0
    torch.testing.assert_close(out[keep], ref[keep], atol=1e-10, rtol=1e-10)


def test_attention_runs_through_attnkit_core_and_no_out_projection() -> None:
    m = _model()
    with record_backends() as used, torch.no_grad():
        m(torch.tensor([[0, 1, 2]]))
    assert len(used) == 2  # one attention call per block
    assert isinstance(m.blocks[0].attn.out_proj, torch.nn.Identity)
    assert m.blocks[0].attn.cross_attention  # LN-ed queries, raw keys/values


def test_causal_and_padding_invariant() -> None:
    m = _model()
    seq = torch.tensor([[0, 0, 3, 4, 5, 6]])
    with torch.no_grad():
        a = m(seq)
        future = m(torch.tensor([[0, 0, 3, 4, 5, 9]]))
        short = m(seq[:, 2:])
    torch.testing.assert_close(a[:, :5], future[:, :5])  # changing the last item leaves earlier steps alone
    torch.testing.assert_close(a[:, 2:], short, atol=1e-5, rtol=1e-5)  # less left padding, same states
    assert m.item_emb.weight[0].abs().sum() == 0


def test_paper_builders() -> None:
    m = sasrec_paper(100)
    assert (m.embed_dim, len(m.blocks), m.blocks[0].attn.num_heads, m.max_len) == (50, 2, 1, 50)
    assert m.emb_dropout.p == 0.5
    ml = sasrec_ml1m(100)
    assert (ml.max_len, ml.emb_dropout.p) == (200, 0.2)


def test_forward_rejects_sequences_longer_than_max_len() -> None:
    with pytest.raises(ValueError, match=r"exceeds max_len=6; keep the most recent 6 items"):
        _model()(torch.ones(1, 7, dtype=torch.long))


def test_recommend_single_batch_and_exclusion() -> None:
    m = _model()
    ids, scores = m.recommend([3, 4, 5], k=5)
    assert ids.shape == (5,) and scores.shape == (5,)
    assert not set(ids.tolist()) & {0, 3, 4, 5}
    assert torch.all(scores[:-1] >= scores[1:])
    bids, _ = m.recommend([[3, 4, 5], [7]], k=5)
    assert bids.shape == (2, 5)
    torch.testing.assert_close(bids[0], ids)
    # a padded 2-D tensor is the same batch
    pids, _ = m.recommend(torch.tensor([[3, 4, 5], [0, 0, 7]]), k=5)
    torch.testing.assert_close(pids, bids)
    seen, _ = m.recommend([3, 4, 5], k=20 - 3, exclude_seen=True)
    assert set(seen.tolist()) == set(range(1, 21)) - {3, 4, 5}
    with_seen, _ = m.recommend([3, 4, 5], k=20, exclude_seen=False)
    assert set(with_seen.tolist()) == set(range(1, 21))
    assert m.training is False


def test_recommend_keeps_the_most_recent_max_len_items() -> None:
    m = _model()
    long = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    _, s = m.recommend(long, k=3, exclude_seen=False)
    _, s2 = m.recommend(long[-6:], k=3, exclude_seen=False)
    torch.testing.assert_close(s, s2)
    excl, _ = m.recommend(long, k=3)  # exclusion uses the whole history, not only the last max_len
    assert not set(excl.tolist()) & set(long)


@pytest.mark.parametrize(
    ("history", "match"),
    [
        ([3, 21], r"unknown item id 21; this model knows ids 1..20"),
        ([0, 3], r"unknown item id 0"),
        ([[1], []], r"history 1 is empty"),
        ([], r"histories is empty"),
    ],
)
def test_recommend_bad_input(history, match) -> None:
    with pytest.raises(ValueError, match=match):
        _model().recommend(history, k=2)


def test_recommend_k_too_large() -> None:
    with pytest.raises(ValueError, match=r"k=19 is more than the 18 items left"):
        _model().recommend([1, 2], k=19)
