"""Layers: MHA/encoder, attention pooling, 2D/3D blocks, Linformer, Nystromformer, torch converters."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from attnkit.core import (
    AttentionPooling,
    CausalMask,
    ChannelAttention2d,
    CrossAttentionGate2d,
    KeyPaddingMask,
    LinformerAttention,
    MultiHeadAttention,
    NystromAttention,
    PositionalEncoding2d,
    PositionAttention2d,
    SlidingWindowMask,
    SpatialSelfAttention2d,
    TransformerEncoder,
    TransformerEncoderLayer,
    from_torch_encoder,
    from_torch_encoder_layer,
    from_torch_mha,
)
from attnkit.core.layers import nystrom_attention
from attnkit.core.layers.efficient import pinv_newton_schulz

# ---------------------------------------------------------------- MHA and encoder


def test_mha_weights_and_cross_attention() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(12, 3, cross_attention=True, kdim=5)
    q, kv = torch.randn(2, 4, 12), torch.randn(2, 7, 5)
    out, w = mha(q, kv, KeyPaddingMask(torch.tensor([7, 3])), need_weights=True)
    assert out.shape == (2, 4, 12) and w is not None and w.shape == (2, 3, 4, 7)
    assert torch.equal(w[1, :, :, 3:], torch.zeros(3, 4, 4))
    out2, none = mha(q, kv, KeyPaddingMask(torch.tensor([7, 3])))
    assert none is None
    torch.testing.assert_close(out, out2, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="cross_attention=True"):
        MultiHeadAttention(12, 3)(q, kv)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_stack_shapes_and_weights(norm_first: bool) -> None:
    layer = TransformerEncoderLayer(16, 2, 32, dropout=0.0, norm_first=norm_first)
    enc = TransformerEncoder(layer, 2)
    x = torch.randn(3, 5, 16)
    y, ws = enc(x, CausalMask(), need_weights=True)
    assert y.shape == x.shape and len(ws) == 2 and ws[0].shape == (3, 2, 5, 5)
    assert isinstance(enc.norm, nn.LayerNorm) == norm_first
    # causal: changing the last token leaves earlier outputs unchanged
    x2 = x.clone()
    x2[:, -1] += 1.0
    torch.testing.assert_close(enc(x2, CausalMask())[0][:, :-1], y[:, :-1])


# ---------------------------------------------------------------- pooling


def test_attention_pooling_ignores_padding() -> None:
    torch.manual_seed(0)
    pool = AttentionPooling(8, num_heads=2)
    x = torch.randn(3, 6, 8)
    lengths = torch.tensor([6, 4, 0])
    out, w = pool(x, lengths, need_weights=True)
    assert out.shape == (3, 8) and w is not None and w.shape == (3, 2, 1, 6)
    # padded steps do not matter
    x2 = x.clone()
    x2[1, 4:] = 100.0
    torch.testing.assert_close(pool(x2, lengths)[0], out)
    # equals pooling the unpadded sequence alone
    torch.testing.assert_close(pool(x[1:2, :4])[0], out[1:2], atol=1e-6, rtol=1e-5)
    # an empty sequence pools to the output bias only (zero attention output)
    empty = pool.attn.out_proj(torch.zeros(8))
    torch.testing.assert_close(out[2], empty)
    # bool mask form, True = valid
    valid = torch.arange(6).unsqueeze(0) < lengths.unsqueeze(1)
    torch.testing.assert_close(pool(x, valid)[0], out)


def test_attention_pooling_multiple_queries() -> None:
    pool = AttentionPooling(8, 2, num_queries=3, flatten=True)
    assert pool(torch.randn(2, 5, 8))[0].shape == (2, 24)
    pool = AttentionPooling(8, 2, num_queries=3)
    assert pool(torch.randn(2, 5, 8))[0].shape == (2, 3, 8)


# ---------------------------------------------------------------- 2D / 3D blocks


def test_positional_encoding_2d_and_3d() -> None:
    pe = PositionalEncoding2d(8)
    g = pe.grid((3, 4), torch.device("cpu"), torch.float32)
    assert g.shape == (8, 3, 4)
    # first half encodes rows (constant along columns), second half columns
    torch.testing.assert_close(g[:4], g[:4, :, :1].expand(4, 3, 4))
    torch.testing.assert_close(g[4:], g[4:, :1, :].expand(4, 3, 4))
    assert g[0, 1, 0].item() == pytest.approx(math.sin(1.0))
    assert PositionalEncoding2d(7)(torch.zeros(1, 7, 2, 3, 4)).shape == (1, 7, 2, 3, 4)  # 3D, 1 zero channel
    with pytest.raises(ValueError, match="expects"):
        pe(torch.zeros(1, 5, 3, 3))


@pytest.mark.parametrize("spatial", [(4, 5), (2, 3, 4)], ids=["2d", "3d"])
def test_spatial_self_attention(spatial: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    block = SpatialSelfAttention2d(8, num_heads=2)
    x = torch.randn(2, 8, *spatial, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    _, w = block.forward_with_weights(x)
    n = math.prod(spatial)
    assert w is not None and w.shape == (2, 2, n, n)
    # without positional encoding the block is permutation-equivariant over positions
    plain = SpatialSelfAttention2d(8, 2, positional=False)
    flat = x.detach().flatten(2)
    perm = torch.randperm(n)
    a = plain(flat[..., perm].reshape(x.shape)).flatten(2)
    b = plain(x.detach()).flatten(2)[..., perm]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kv_stride", [1, 2])
def test_spatial_self_attention_zero_init_is_identity_and_learns(kv_stride: int) -> None:
    torch.manual_seed(0)
    block = SpatialSelfAttention2d(8, 2, zero_init=True, kv_stride=kv_stride)
    x = torch.randn(2, 8, 4, 6)
    assert torch.equal(block(x), x)  # residual + gamma = 0: exactly the identity
    default = SpatialSelfAttention2d(8, 2, kv_stride=kv_stride)
    assert not torch.allclose(default(x), x)  # the default init is not the identity
    # it is not stuck at the identity: one SGD step on a loss moves gamma, the next the projections
    target = torch.randn_like(x)
    for _ in range(2):
        block.zero_grad()
        (block(x) - target).square().mean().backward()
        assert block.gamma is not None and block.gamma.grad is not None and block.gamma.grad.abs().item() > 0
        with torch.no_grad():
            for p in block.parameters():
                if p.grad is not None:
                    p -= 0.1 * p.grad
        assert not torch.allclose(block(x), x)
    assert block.attn.out_proj.weight.grad is not None and block.attn.out_proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="residual=True"):
        SpatialSelfAttention2d(8, 2, residual=False, zero_init=True)


def _adam_branch_ratio(block: SpatialSelfAttention2d, steps: int) -> float:
    """``||block(x) - x|| / ||x||`` after ``steps`` Adam steps (lr 1e-3) towards a random target."""
    x = torch.randn(2, block.attn.embed_dim, 4, 4)
    target = torch.randn_like(x)
    opt = torch.optim.Adam(block.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        (block(x) - target).square().mean().backward()
        opt.step()
    with torch.no_grad():
        return ((block(x) - x).norm() / x.norm()).item()


def test_spatial_self_attention_zero_init_stays_near_identity_under_adam() -> None:
    # the reason for the scalar: a zeroed 128x128 output projection under Adam (every element moves by ~lr per
    # step) makes the branch a large part of the output within 10 steps; one scalar grows ~C times slower
    torch.manual_seed(0)
    scalar = _adam_branch_ratio(SpatialSelfAttention2d(128, 4, zero_init=True), steps=10)
    torch.manual_seed(0)
    zeroed = SpatialSelfAttention2d(128, 4)
    with torch.no_grad():
        zeroed.attn.out_proj.weight.zero_()
        zeroed.attn.out_proj.bias.zero_()
    projection = _adam_branch_ratio(zeroed, steps=10)
    assert scalar < 0.05 < 0.2 < projection


@pytest.mark.parametrize("kv_stride", [1, 2])
def test_spatial_self_attention_branch_norm_sizes_the_branch_by_gamma_alone(kv_stride: int) -> None:
    torch.manual_seed(0)
    c = 16
    block = SpatialSelfAttention2d(c, 2, zero_init=True, branch_norm=True, kv_stride=kv_stride)
    x = torch.randn(2, c, 4, 6)
    assert torch.equal(block(x), x)  # still the identity at init
    with torch.no_grad():
        block.gamma.fill_(0.05)  # type: ignore[union-attr]
        per_position = (block(x) - x).norm(dim=1)
        torch.testing.assert_close(per_position, torch.full_like(per_position, 0.05 * c**0.5), rtol=1e-3, atol=1e-4)
        # the projections' scale no longer sets the branch's size; without the norm it does
        plain = SpatialSelfAttention2d(c, 2, zero_init=True, kv_stride=kv_stride)
        plain.load_state_dict(block.state_dict())
        before = (plain(x) - x).norm().item()
        for b in (block, plain):
            b.attn.out_proj.weight.mul_(10.0)
            b.attn.out_proj.bias.mul_(10.0)
        torch.testing.assert_close((block(x) - x).norm(dim=1), per_position, rtol=1e-3, atol=1e-4)
        assert (plain(x) - x).norm().item() > 5 * before
    # gradients reach gamma and, through the norm, the projections
    block.zero_grad()
    (block(x) - torch.randn_like(x)).square().mean().backward()
    assert block.gamma is not None and block.gamma.grad is not None and block.gamma.grad.abs().item() > 0
    assert block.attn.out_proj.weight.grad is not None and block.attn.out_proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="branch_norm=True needs zero_init=True"):
        SpatialSelfAttention2d(c, 2, branch_norm=True)
    # a state dict without gamma comes from a block whose branch is not normalised: refused, with the fix
    with pytest.raises(ValueError, match="branch_norm=False"):
        block.load_state_dict(SpatialSelfAttention2d(c, 2).state_dict())


def test_spatial_self_attention_branch_norm_keeps_the_branch_bounded_under_adam() -> None:
    # under Adam the ReZero scalar alone lets the branch outgrow it (the projections' gain keeps rising); with the
    # branch normalised its size per position is |gamma| * sqrt(C), and gamma moves by about lr per step
    torch.manual_seed(0)
    normed = SpatialSelfAttention2d(128, 4, zero_init=True, branch_norm=True)
    ratio = _adam_branch_ratio(normed, steps=50)
    assert normed.gamma is not None
    g = abs(normed.gamma.item())
    assert 0 < g <= 1.5 * 50 * 1e-3  # Adam: about the learning rate per step, a little more early on
    # ||branch|| / ||x|| with x ~ N(0, 1): |gamma| sqrt(C) / sqrt(C) per position
    assert ratio == pytest.approx(g, rel=0.1)


def test_spatial_self_attention_checkpoints_load_across_zero_init() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 4, 6)
    trained = SpatialSelfAttention2d(8, 2, zero_init=True)
    with torch.no_grad():
        trained.gamma.fill_(0.3)  # type: ignore[union-attr]
    plain = SpatialSelfAttention2d(8, 2)
    assert "gamma" in trained.state_dict() and "gamma" not in plain.state_dict()
    # with gamma into a block without it: gamma folded into the output projection
    plain.load_state_dict(trained.state_dict(), strict=True)
    torch.testing.assert_close(plain(x), trained(x))
    # without gamma (the default init, or a checkpoint from before the scalar) into a zero_init block: gamma 1
    other = SpatialSelfAttention2d(8, 2, zero_init=True)
    reference = SpatialSelfAttention2d(8, 2)
    other.load_state_dict(reference.state_dict(), strict=True)
    assert other.gamma is not None and other.gamma.item() == 1.0
    torch.testing.assert_close(other(x), reference(x))
    # inside a larger model (prefixed keys) as well
    outer_saved, outer_new = nn.Sequential(trained), nn.Sequential(SpatialSelfAttention2d(8, 2))
    outer_new.load_state_dict(outer_saved.state_dict(), strict=True)
    torch.testing.assert_close(outer_new(x), outer_saved(x))
    # the saved state dict itself is left as it was
    sd = trained.state_dict()
    SpatialSelfAttention2d(8, 2).load_state_dict(sd)
    assert "gamma" in sd


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_cross_attention_gate_open_init_passes_the_skip(train: bool) -> None:
    torch.manual_seed(0)
    s, y = torch.randn(2, 8, 8, 8), torch.randn(2, 12, 4, 4)
    opened = CrossAttentionGate2d(8, 12, num_heads=2, open_init=3.0).train(train)
    torch.testing.assert_close(opened(s, y), s * torch.sigmoid(torch.tensor(3.0)))
    # the default (paper) init halves the skip on average; in training mode (batch-norm statistics of the
    # batch) each channel of each image gets its own random factor
    paper = CrossAttentionGate2d(8, 12, num_heads=2).train(train)
    ratio = paper(s, y) / s
    assert 0.3 < ratio.mean() < 0.7
    if train:
        assert ratio.std() > 0.1
    assert {k: v.shape for k, v in opened.state_dict().items()} == {k: v.shape for k, v in paper.state_dict().items()}
    # the open gate can learn to close: its output norm and projection get gradients
    (opened(s, y) * torch.randn_like(s)).sum().backward()
    assert opened.out_norm.weight.grad is not None and opened.out_norm.weight.grad.abs().sum() > 0


def test_channel_attention_matches_danet_formula() -> None:
    torch.manual_seed(0)
    cam = ChannelAttention2d()
    with torch.no_grad():
        cam.gamma.fill_(0.7)
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    # DANet CAM written out: energy = X X^T, attention = softmax(max(energy) - energy)
    f = x.view(2, 6, -1)
    energy = f @ f.transpose(1, 2)
    att = torch.softmax(energy.amax(-1, keepdim=True) - energy, dim=-1)
    ref = 0.7 * (att @ f).view_as(x) + x
    torch.testing.assert_close(cam.double()(x), ref)
    assert ChannelAttention2d()(torch.randn(1, 4, 2, 2, 2)).shape == (1, 4, 2, 2, 2)
    assert torch.equal(ChannelAttention2d()(x.float()), x.float())  # gamma starts at 0: identity


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_channel_attention_default_path_matches_attention_backends(layout: str) -> None:
    """The default ("auto": the matmul backend on a CPU map of 256+ positions, no subnormals) against the
    reference attention in float64: values and every gradient, the input's memory layout kept, every call
    through attention()."""
    from attnkit.core import record_backends
    from attnkit.core.layers import channel_attention

    g = torch.Generator().manual_seed(1)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(2, 8, 16, 17, generator=g, dtype=torch.float64).contiguous(memory_format=fmt)
    x.requires_grad_(True)
    fast, ref = ChannelAttention2d().double(), ChannelAttention2d(backend="math").double()
    with torch.no_grad():
        fast.gamma.fill_(0.6)
        ref.gamma.fill_(0.6)
    up = torch.randn(2, 8, 16, 17, generator=g, dtype=torch.float64)
    with record_backends() as used:
        y_fast = fast(x)
    assert used == ["matmul"]
    with record_backends() as used:
        y_ref = ref(x)
    assert used == ["math"]
    torch.testing.assert_close(y_fast, y_ref)
    assert y_fast.is_contiguous(memory_format=fmt)
    grads_fast = torch.autograd.grad((y_fast * up).sum(), (x, fast.gamma))
    grads_ref = torch.autograd.grad((y_ref * up).sum(), (x, ref.gamma))
    for a, b in zip(grads_fast, grads_ref, strict=True):
        torch.testing.assert_close(a, b)
    # a small map (30 positions) goes to the fused kernel; a volume: any number of spatial dims
    with record_backends() as used:
        ChannelAttention2d()(x[..., :5, :6])
    assert used == ["sdpa"]
    v = torch.randn(1, 4, 3, 2, 2, generator=g, dtype=torch.float64)
    fv = v.flatten(2)
    ev = fv @ fv.transpose(1, 2)
    torch.testing.assert_close(channel_attention(v),
                               (torch.softmax(ev.amax(-1, keepdim=True) - ev, dim=-1) @ fv).view_as(v))


def test_channel_attention_with_huge_energies_keeps_float32_accuracy() -> None:
    """DANet's energies are unscaled: on a 64x64 map they run into the thousands and most softmax weights
    underflow. The floor on tiny weights must not change the float32 result beyond rounding."""
    from attnkit.core.layers import channel_attention

    g = torch.Generator().manual_seed(2)
    x = torch.relu(torch.randn(2, 16, 32, 32, generator=g)) * 3  # energies ~ 1e3 to 5e3
    f = x.double().flatten(2)
    energy = f @ f.transpose(1, 2)
    want = (torch.softmax(energy.amax(-1, keepdim=True) - energy, dim=-1) @ f).view_as(x)
    got = channel_attention(x.contiguous(memory_format=torch.channels_last))
    assert (energy.amax(-1) - energy.amin(-1)).min() > 1000  # most weights are far below float32's tiny
    # the float32 formula without the floor: its error (from rounding energies of ~1e4) bounds ours
    f32 = x.flatten(2)
    e32 = f32 @ f32.transpose(1, 2)
    plain = (torch.softmax(e32.amax(-1, keepdim=True) - e32, dim=-1) @ f32).view_as(x)
    err_plain = (plain.double() - want).abs().max().item()
    assert 0 < err_plain < 1e-3
    # Both round energies of ~5e3 to float32 (an ulp of ~5e-4); which of the two lands nearer the float64
    # result depends on the CPU's kernels: ours was within 1.5x the plain formula's error on an Intel Xeon and
    # 2.7x on an AMD EPYC (AVX512-BF16). A floor that changed the result (say at 1e-5 of the largest weight)
    # would be tens of times outside this.
    err = (got.double() - want).abs().max().item()
    assert err <= 4 * err_plain, (err, err_plain)
    # under autocast and in half precision the energies are formed in float32 (bfloat16 energies of ~4e3 are
    # off by up to 16, which reorders the softmax): only the result is rounded to the low precision
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = channel_attention(x)
    assert auto.dtype == torch.bfloat16
    torch.testing.assert_close(auto.double(), want, rtol=2e-2, atol=2e-2)
    xh = x.half()
    half = channel_attention(xh)  # energies up to ~5e3: float16 holds them, but only to ~4 units
    fh = xh.double().flatten(2)
    eh = fh @ fh.transpose(1, 2)
    want_half = (torch.softmax(eh.amax(-1, keepdim=True) - eh, dim=-1) @ fh).view_as(x)
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    torch.testing.assert_close(half.double(), want_half, rtol=2e-3, atol=1e-2)
    naive = x.bfloat16().flatten(2)
    e16 = naive @ naive.transpose(1, 2)
    naive_out = (torch.softmax(e16.amax(-1, keepdim=True) - e16, dim=-1) @ naive).view_as(x)
    assert (naive_out.double() - want).abs().max() > 5 * (auto.double() - want).abs().max()


def test_position_attention_matches_danet_formula() -> None:
    """DANet PAM written out with 1x1 convolutions and bmm, as the paper's code does, in float64."""
    torch.manual_seed(0)
    pam = PositionAttention2d(16, reduction=8).double()
    with torch.no_grad():
        pam.gamma.fill_(0.3)
    x = torch.randn(2, 16, 5, 3, dtype=torch.float64)
    w, b = pam.proj.weight, pam.proj.bias
    conv = [nn.Conv2d(16, n, 1).double() for n in (2, 2, 16)]
    for c, (lo, hi) in zip(conv, [(0, 2), (2, 4), (4, 20)], strict=True):
        with torch.no_grad():
            c.weight.copy_(w[lo:hi, :, None, None])
            c.bias.copy_(b[lo:hi])
    q = conv[0](x).flatten(2).transpose(1, 2)  # (B, N, C/8)
    k = conv[1](x).flatten(2)  # (B, C/8, N)
    att = torch.softmax(q @ k, dim=-1)  # unscaled energies
    v = conv[2](x).flatten(2)  # (B, C, N)
    ref = 0.3 * (v @ att.transpose(1, 2)).view_as(x) + x
    torch.testing.assert_close(pam(x), ref)
    y = PositionAttention2d(16)(x.float())
    assert torch.equal(y, x.float())  # gamma starts at 0: identity
    assert PositionAttention2d(4)(torch.randn(1, 4, 2, 3, 2)).shape == (1, 4, 2, 3, 2)  # 3D, qk width 1
    with pytest.raises(ValueError, match=r"expects \(B, 16, H, W\)"):
        PositionAttention2d(16)(torch.randn(1, 8, 4, 4))


@pytest.mark.parametrize(("skip", "gate"), [((8, 8), (4, 4)), ((4, 8, 8), (2, 4, 4))], ids=["2d", "3d"])
def test_cross_attention_gate(skip: tuple[int, ...], gate: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    block = CrossAttentionGate2d(skip_channels=8, gate_channels=12, num_heads=2)
    s = torch.randn(2, 8, *skip, requires_grad=True)
    y = torch.randn(2, 12, *gate, requires_grad=True)
    out, w = block.forward_with_weights(s, y)
    assert out.shape == s.shape
    n = math.prod(gate)
    assert w is not None and w.shape == (2, 2, n, n)
    # a gate in (0, 1): the output is S scaled elementwise by at most 1, same sign
    assert (out * s >= 0).all() and (out.abs() <= s.abs() + 1e-6).all()
    out.sum().backward()
    assert s.grad is not None and y.grad is not None and y.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="larger"):
        block(torch.randn(1, 8, 2, 2), torch.randn(1, 12, 4, 4))


def _gate_written_out(g: CrossAttentionGate2d, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """U-Transformer's MHCA as the paper draws it, with 2D layers: 1x1 conv, BatchNorm2d (batch statistics),
    ReLU, then max pooling; softmax(q k^T / sqrt(d)) v per head; 1x1 conv, BatchNorm2d, sigmoid, bilinear upsampling."""
    def conv_bn(x: torch.Tensor, proj: nn.Linear, norm: nn.BatchNorm1d) -> torch.Tensor:
        z = nn.functional.conv2d(x, proj.weight[:, :, None, None], proj.bias)
        return nn.functional.batch_norm(z, None, None, norm.weight, norm.bias, training=True, eps=norm.eps)

    yy = nn.functional.max_pool2d(torch.relu(conv_bn(y, g.gate_proj, g.gate_norm)), g.pool, ceil_mode=True)
    ss = nn.functional.adaptive_max_pool2d(torch.relu(conv_bn(s, g.skip_proj, g.skip_norm)), yy.shape[-2:])
    assert g.pos_skip is not None and g.pos_gate is not None
    ss, yy = ss + g.pos_skip.grid(tuple(ss.shape[-2:]), ss.device, ss.dtype), yy + g.pos_gate.grid(
        tuple(yy.shape[-2:]), yy.device, yy.dtype)
    b, c, h, w = yy.shape
    ty, ts = yy.reshape(b, c, h * w).transpose(1, 2), ss.reshape(b, c, h * w).transpose(1, 2)
    nh = g.num_heads

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, h * w, nh, c // nh).transpose(1, 2)

    q, k, v = heads(g.q_proj(ty)), heads(g.k_proj(ty)), heads(g.v_proj(ts))
    z = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(c // nh), dim=-1) @ v
    z = g.out_proj(z.transpose(1, 2).reshape(b, h * w, c)).transpose(1, 2).reshape(b, c, h, w)
    m = torch.sigmoid(nn.functional.batch_norm(z, None, None, g.out_norm.weight, g.out_norm.bias, training=True,
                                               eps=g.out_norm.eps))
    return s * nn.functional.interpolate(m, size=s.shape[-2:], mode="bilinear", align_corners=False)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("skip_size", [(12, 16), (6, 8)], ids=["skip4x", "skip2x"])
def test_cross_attention_gate_matches_the_paper_written_out(layout: str, skip_size: tuple[int, int]) -> None:
    """The token-wise implementation (linear maps on channels-last views, ReLU after the max pooling) computes
    the 2D-layer formulation: same output and gradients, in the skip's memory layout."""
    torch.manual_seed(0)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    g = CrossAttentionGate2d(8, 12, num_heads=2, pool=2).double().to(memory_format=fmt)  # type: ignore[call-overload]
    with torch.no_grad():  # a non-trivial output norm (its default weight 1, bias 0 hides little, but be sure)
        g.out_norm.weight.uniform_(0.5, 1.5)
        g.out_norm.bias.uniform_(-0.5, 0.5)
    # skip2x: the skip max-pooled over 2x2 blocks only, so its ReLU zeroes some pooled values
    s0 = torch.randn(2, 8, *skip_size, dtype=torch.float64).contiguous(memory_format=fmt)
    y0 = torch.randn(2, 12, 6, 8, dtype=torch.float64).contiguous(memory_format=fmt)
    s, y = s0.clone().requires_grad_(), y0.clone().requires_grad_()
    out = g(s, y)
    assert out.is_contiguous(memory_format=fmt)
    rs, ry = s0.clone().requires_grad_(), y0.clone().requires_grad_()
    ref = _gate_written_out(g, rs, ry)
    torch.testing.assert_close(out, ref)
    probe = torch.randn_like(ref)
    (out * probe).sum().backward()
    grads = [s.grad, y.grad] + [p.grad.clone() for p in g.parameters()]  # type: ignore[union-attr]
    g.zero_grad()
    (ref * probe).sum().backward()
    for a, r in zip(grads, [rs.grad, ry.grad] + [p.grad for p in g.parameters()], strict=True):
        assert a is not None and r is not None
        torch.testing.assert_close(a, r)


# ---------------------------------------------------------------- Linformer / Nystromformer


def test_linformer_with_identity_projection_is_exact_attention() -> None:
    torch.manual_seed(0)
    n = 10
    lin = LinformerAttention(16, 2, max_len=n, proj_dim=n).double()
    with torch.no_grad():
        lin.e_proj.copy_(torch.eye(n))
        assert lin.f_proj is not None
        lin.f_proj.copy_(torch.eye(n))
    ref = MultiHeadAttention(16, 2).double()
    ref.load_state_dict({k: v for k, v in lin.state_dict().items() if not k.endswith("_proj") or "." in k})
    x = torch.randn(3, n, 16, dtype=torch.float64)
    lengths = torch.tensor([10, 7, 3])
    torch.testing.assert_close(lin(x)[0], ref(x)[0])
    # With padding, padded keys are zeroed before the projection (as in the paper's code): their content
    # cannot leak into the output, but -- unlike masking -- they still hold a slot in the projection.
    x2 = x.clone()
    x2[1, 7:] = 50.0
    x2[2, 3:] = -50.0
    torch.testing.assert_close(lin(x2, lengths)[0][0], lin(x, lengths)[0][0])
    torch.testing.assert_close(lin(x2, lengths)[0][1:, :3], lin(x, lengths)[0][1:, :3])


def test_linformer_shorter_input_shared_kv_and_errors() -> None:
    lin = LinformerAttention(8, 2, max_len=32, proj_dim=4, share_kv=True)
    out, w = lin(torch.randn(2, 20, 8), need_weights=True)
    assert out.shape == (2, 20, 8) and w is not None and w.shape == (2, 2, 20, 4)
    assert lin.f_proj is None
    with pytest.raises(ValueError, match="max_len"):
        lin(torch.randn(1, 33, 8))
    with pytest.raises(ValueError, match="key padding only"):
        lin(torch.randn(1, 8, 8), CausalMask())


def test_nystrom_with_all_landmarks_is_exact_attention() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 12, 4, dtype=torch.float64) for _ in range(3))
    exact = torch.softmax(q @ k.transpose(-2, -1) / 2.0, -1) @ v
    torch.testing.assert_close(nystrom_attention(q, k, v, 12, pinv_iters=None), exact)
    # the paper's iterative pseudo-inverse approaches it too
    approx = nystrom_attention(q, k, v, 12, pinv_iters=30)
    torch.testing.assert_close(approx, exact, atol=1e-4, rtol=1e-4)
    # fewer landmarks: an approximation, error shrinks as landmarks grow
    errs = [(nystrom_attention(q, k, v, m, pinv_iters=None) - exact).abs().mean().item() for m in (2, 6, 12)]
    assert errs[0] > errs[2] and errs[2] < 1e-10


def test_newton_schulz_inverts_softmax_kernel() -> None:
    a = torch.softmax(torch.randn(6, 6, dtype=torch.float64), -1)
    torch.testing.assert_close(pinv_newton_schulz(a, 40) @ a, torch.eye(6, dtype=torch.float64), atol=1e-6,
                               rtol=0)


def test_nystrom_module_padding_and_exact_limit() -> None:
    torch.manual_seed(0)
    nys = NystromAttention(16, 2, num_landmarks=64, pinv_iters=None).double()
    ref = MultiHeadAttention(16, 2).double()
    ref.load_state_dict(nys.state_dict(), strict=False)
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    torch.testing.assert_close(nys(x)[0], ref(x)[0])  # landmarks clipped to L = 9: exact
    lengths = torch.tensor([9, 5])
    out = nys(x, lengths)[0]
    torch.testing.assert_close(out[1, :5], ref(x[1:2, :5])[0][0])  # padding does not leak
    conv = NystromAttention(16, 2, num_landmarks=4, conv_kernel=3)
    assert conv(torch.randn(2, 10, 16))[0].shape == (2, 10, 16)
    with pytest.raises(ValueError, match="need_weights"):
        conv(torch.randn(1, 4, 16), need_weights=True)
    with pytest.raises(ValueError, match="key padding only"):
        conv(torch.randn(1, 4, 16), SlidingWindowMask(2))


# ---------------------------------------------------------------- torch converters


@pytest.mark.parametrize("batch_first", [True, False])
def test_from_torch_mha_equal_outputs(batch_first: bool) -> None:
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    ours = from_torch_mha(ref).eval()
    x = torch.randn(3, 7, 16)
    pad = torch.tensor([[False] * 7, [False] * 4 + [True] * 3, [False] * 2 + [True] * 5])
    xi = x if batch_first else x.transpose(0, 1)
    want, want_w = ref(xi, xi, xi, key_padding_mask=pad, average_attn_weights=False)
    want = want if batch_first else want.transpose(0, 1)
    got, got_w = ours(x, mask=KeyPaddingMask.from_padding(pad), need_weights=True)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got_w, want_w, atol=1e-6, rtol=1e-5)


def test_from_torch_mha_cross_attention_kdim() -> None:
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(16, 2, kdim=6, vdim=6, batch_first=True).eval()
    ours = from_torch_mha(ref, cross_attention=True).eval()
    q, kv = torch.randn(2, 5, 16), torch.randn(2, 8, 6)
    torch.testing.assert_close(ours(q, kv)[0], ref(q, kv, kv)[0], atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="cross_attention=True"):
        from_torch_mha(ref)
    with pytest.raises(ValueError, match="add_bias_kv"):
        from_torch_mha(nn.MultiheadAttention(8, 2, add_bias_kv=True))


@pytest.mark.parametrize(("activation", "norm_first"), [("relu", False), ("gelu", True)])
def test_from_torch_encoder_equal_outputs(activation: str, norm_first: bool) -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 40, dropout=0.1, activation=activation, norm_first=norm_first,
                                       batch_first=True)
    ref = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(16) if norm_first else None,
                                enable_nested_tensor=False).eval()
    ours = from_torch_encoder(ref).eval()
    x = torch.randn(3, 6, 16)
    pad = torch.zeros(3, 6, dtype=torch.bool)
    pad[1, 4:] = True
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1)  # torch: True = masked
    want = ref(x, mask=causal, src_key_padding_mask=pad, is_causal=True)
    got, _ = ours(x, KeyPaddingMask.from_padding(pad) & CausalMask())
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    single = from_torch_encoder_layer(ref.layers[0]).eval()  # type: ignore[arg-type]
    torch.testing.assert_close(single(x)[0], ref.layers[0](x), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- reduced-resolution attention (kv_stride, pool)


@pytest.mark.parametrize("spatial", [(6, 4), (5, 3), (3, 4, 4)], ids=["2d", "2d-odd", "3d"])
def test_spatial_self_attention_kv_stride_matches_cross_attention_to_pooled_map(spatial: tuple[int, ...]) -> None:
    """kv_stride=2 == MHA with queries from x + PE and keys / values from avg_pool(x + PE), in float64."""
    torch.manual_seed(0)
    block = SpatialSelfAttention2d(8, num_heads=2, kv_stride=2).double()
    ref = MultiHeadAttention(8, 2, cross_attention=True).double()
    w, b = block.attn.qkv_proj.weight, block.attn.qkv_proj.bias
    with torch.no_grad():
        ref.q_proj.weight.copy_(w[:8]), ref.q_proj.bias.copy_(b[:8])
        ref.kv_proj.weight.copy_(w[8:]), ref.kv_proj.bias.copy_(b[8:])
        ref.out_proj.load_state_dict(block.attn.out_proj.state_dict())
    x = torch.randn(2, 8, *spatial, dtype=torch.float64, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    h = block.pos(x)
    pool = nn.functional.avg_pool2d if len(spatial) == 2 else nn.functional.avg_pool3d
    kv = pool(h, 2, ceil_mode=True).flatten(2).transpose(1, 2)
    out, _ = ref(h.flatten(2).transpose(1, 2), kv)
    expected = x + out.transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(y, expected)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad((y * g).sum(), x)
    (gx_ref,) = torch.autograd.grad((expected * g).sum(), x)
    torch.testing.assert_close(gx, gx_ref)
    _, weights = block.forward_with_weights(x)
    m = math.prod((s + 1) // 2 for s in spatial)
    assert weights is not None and weights.shape == (2, 2, math.prod(spatial), m)
    with pytest.raises(ValueError, match="kv_stride must be >= 1"):
        SpatialSelfAttention2d(8, kv_stride=0)


def test_position_attention_kv_stride_matches_pooled_formula() -> None:
    torch.manual_seed(0)
    pam = PositionAttention2d(16, reduction=8, kv_stride=2).double()
    with torch.no_grad():
        pam.gamma.fill_(0.3)
    x = torch.randn(2, 16, 6, 5, dtype=torch.float64)
    w, b = pam.proj.weight, pam.proj.bias
    q = (x.flatten(2).transpose(1, 2) @ w[:2].T + b[:2])  # (B, N, 2)
    pooled = nn.functional.avg_pool2d(x, 2, ceil_mode=True).flatten(2).transpose(1, 2)  # (B, M, 16)
    k = pooled @ w[2:4].T + b[2:4]
    v = pooled @ w[4:].T + b[4:]
    ref = 0.3 * (torch.softmax(q @ k.transpose(1, 2), -1) @ v).transpose(1, 2).reshape_as(x) + x
    torch.testing.assert_close(pam(x), ref)


@pytest.mark.parametrize("train", [True, False])
def test_cross_attention_gate_pool_equals_full_resolution_on_blockwise_constant_maps(train: bool) -> None:
    """With S and Y constant over the pooled blocks, attending at half resolution is exact (nearest upsampling).

    Duplicated keys split their softmax weight without changing the result, duplicated queries duplicate
    outputs, and BatchNorm sees every value equally often, so pool=2 must reproduce pool=1 in float64.
    """
    torch.manual_seed(0)
    full = CrossAttentionGate2d(8, 12, num_heads=2, upsample="nearest", positional=False).double()
    pooled = CrossAttentionGate2d(8, 12, num_heads=2, upsample="nearest", positional=False, pool=2).double()
    pooled.load_state_dict(full.state_dict())
    full.train(train), pooled.train(train)
    up = nn.Upsample(scale_factor=2, mode="nearest")
    y = up(torch.randn(2, 12, 3, 4, dtype=torch.float64))  # (2, 12, 6, 8), constant on 2x2 blocks
    s = nn.Upsample(scale_factor=4, mode="nearest")(torch.randn(2, 8, 3, 4, dtype=torch.float64))  # 12x16
    out_full, w_full = full.forward_with_weights(s, y)
    out_pooled, w_pooled = pooled.forward_with_weights(s, y)
    assert w_full is not None and w_full.shape == (2, 2, 48, 48)
    assert w_pooled is not None and w_pooled.shape == (2, 2, 12, 12)
    torch.testing.assert_close(out_pooled, out_full)
    with pytest.raises(ValueError, match="pool must be >= 1"):
        CrossAttentionGate2d(8, 12, pool=0)
