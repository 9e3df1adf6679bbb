"""Positional encodings: sinusoidal, learned, relative position bias (Shaw et al.) and rotary."""

from __future__ import annotations

import math

import pytest
import torch

from attnkit.core import (
    CausalMask,
    LearnedPositionalEncoding,
    MultiHeadAttention,
    RelativePositionBias,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    attention,
)
from attnkit.core.attention import flex


def test_sinusoidal_matches_paper_formula() -> None:
    pe = SinusoidalPositionalEncoding(6, max_len=20)
    out = pe(torch.zeros(1, 5, 6), offset=3)
    p, i = 4 + 3, 1  # position 7, pair 1 -> columns 2 (sin) and 3 (cos)
    angle = p / 10000 ** (2 * i / 6)
    assert out[0, 4, 2].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert out[0, 4, 3].item() == pytest.approx(math.cos(angle), abs=1e-6)
    odd = SinusoidalPositionalEncoding(5, max_len=4)(torch.zeros(1, 4, 5))
    assert odd.shape == (1, 4, 5)
    with pytest.raises(ValueError, match="max_len"):
        pe(torch.zeros(1, 21, 6))


def test_learned_adds_per_position_embedding() -> None:
    pe = LearnedPositionalEncoding(8, 4)
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(pe(x) - x, pe.embedding.weight[:3].expand(2, 3, 4))
    torch.testing.assert_close(pe(x, offset=2) - x, pe.embedding.weight[2:5].expand(2, 3, 4))
    with pytest.raises(ValueError, match="max_len"):
        pe(torch.zeros(1, 9, 4))


def test_relative_bias_clips_distances() -> None:
    rpb = RelativePositionBias(num_heads=2, max_distance=2)
    with torch.no_grad():
        rpb.table.copy_(torch.arange(10, dtype=torch.float32).view(5, 2))
    b = rpb(4, 6)
    assert b.shape == (1, 2, 4, 6)
    # head 0, query 0: distances j - i = 0..5 clipped to 0,1,2,2,2,2 -> rows 2,3,4,4,4,4 -> values 4,6,8,8,8,8
    assert b[0, 0, 0].tolist() == [4, 6, 8, 8, 8, 8]
    # query 3 looks back: distances -3..2 -> rows 0,0,1,2,3,4
    assert b[0, 1, 3].tolist() == [1, 1, 3, 5, 7, 9]
    uni = RelativePositionBias(1, 2, bidirectional=False)
    assert uni.table.shape == (3, 1)


def test_relative_bias_same_as_bias_and_as_score_mod() -> None:
    torch.manual_seed(0)
    rpb = RelativePositionBias(num_heads=2, max_distance=3).double()
    q, k, v = (torch.randn(2, 2, 9, 4, dtype=torch.float64) for _ in range(3))
    ref = attention(q, k, v, CausalMask(), backend="math", bias=rpb(9, 9))
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    bm = create_block_mask(CausalMask().mask_mod(), None, None, 9, 9, device="cpu", _compile=False)
    with flex.eager_mode():
        import torch.nn.attention.flex_attention as fa

        fa._FLEX_ATTENTION_DISABLE_COMPILE_DEBUG, before = True, fa._FLEX_ATTENTION_DISABLE_COMPILE_DEBUG
        try:
            got = flex_attention(q, k, v, score_mod=rpb.score_mod(), block_mask=bm)
        finally:
            fa._FLEX_ATTENTION_DISABLE_COMPILE_DEBUG = before
    torch.testing.assert_close(got, ref)


def test_relative_bias_in_mha_gets_gradients() -> None:
    torch.manual_seed(0)
    rpb = RelativePositionBias(num_heads=2, max_distance=2)
    mha = MultiHeadAttention(8, 2, relative_bias=rpb)
    x = torch.randn(2, 5, 8)
    out, _ = mha(x, mask=CausalMask())
    out.sum().backward()
    assert rpb.table.grad is not None and rpb.table.grad.abs().sum() > 0
    # the bias changes the output
    plain = MultiHeadAttention(8, 2)
    plain.load_state_dict(mha.state_dict(), strict=False)
    assert not torch.allclose(plain(x, mask=CausalMask())[0], out)
    with pytest.raises(ValueError, match="heads"):
        MultiHeadAttention(8, 4, relative_bias=rpb)


def test_rotary_scores_depend_on_relative_position_only() -> None:
    torch.manual_seed(0)
    rope = RotaryEmbedding(8).double()
    q = torch.randn(1, 1, 1, 8, dtype=torch.float64).expand(1, 1, 12, 8)
    k = torch.randn(1, 1, 1, 8, dtype=torch.float64).expand(1, 1, 12, 8)
    qr, kr = rope(q, k)
    s = qr @ kr.transpose(-2, -1)
    # same content everywhere: the score is a function of i - j (Toeplitz)
    for d in range(-3, 4):
        diag = torch.diagonal(s[0, 0], offset=d)
        torch.testing.assert_close(diag, diag[0].expand_as(diag))
    # rotation preserves norms; position 0 is unrotated
    torch.testing.assert_close(qr.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(qr[..., 0, :], q[..., 0, :])


def test_rotary_partial_and_errors() -> None:
    rope = RotaryEmbedding(8, rotary_dim=4)
    x = torch.randn(1, 1, 3, 8)
    y = rope.rotate(x)
    torch.testing.assert_close(y[..., 4:], x[..., 4:])
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7)
    with pytest.raises(ValueError, match="head_dim"):
        rope.rotate(torch.randn(1, 1, 3, 6))


def test_mha_with_rotary_uses_it() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2, rotary=RotaryEmbedding(8))
    x = torch.randn(2, 6, 16)
    out, _ = mha(x)
    # shifting the whole input in time does not change relative positions: same output shifted?
    # Easier observable: RoPE makes self-attention position-aware, so permuting tokens changes outputs
    # other than by the same permutation.
    perm = torch.tensor([1, 0, 2, 3, 4, 5])
    out_p, _ = mha(x[:, perm])
    assert not torch.allclose(out_p, out[:, perm], atol=1e-5)
    mha.rotary = None
    out_p, _ = mha(x[:, perm])
    torch.testing.assert_close(out_p, mha(x)[0][:, perm])  # without RoPE: permutation-equivariant
    with pytest.raises(ValueError, match="head_dim"):
        MultiHeadAttention(16, 2, rotary=RotaryEmbedding(4))
