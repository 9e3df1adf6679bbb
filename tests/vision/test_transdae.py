from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnkit.core import record_backends
from attnkit.vision import TransDAE
from attnkit.vision.models.transdae import ChannelTransposedAttention, efficient_attention

TINY = {"dims": (8, 16, 24, 32), "depths": (1, 1, 1, 1), "num_heads": (1, 2, 2, 4), "sr_ratios": (4, 2, 1, 1),
        "mlp_ratio": 2.0, "decoder_channels": (16, 16, 8, 8, 8), "interaction_dim": 8, "interaction_heads": 2}


def test_efficient_attention_matches_shen_et_al_formula() -> None:
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 10, 4, dtype=torch.float64), torch.randn(2, 3, 7, 4, dtype=torch.float64), \
        torch.randn(2, 3, 7, 5, dtype=torch.float64)
    ref = q.softmax(-1) @ (k.softmax(-2).transpose(-2, -1) @ v)  # softmax_d(Q) (softmax_N(K)^T V)
    for backend in ("math", "sdpa", "auto"):
        torch.testing.assert_close(efficient_attention(q, k, v, backend=backend), ref)


def test_efficient_attention_direct_path_matches_identity_reference_forward_and_backward() -> None:
    torch.manual_seed(0)
    shapes = ((2, 3, 10, 4), (2, 3, 7, 4), (2, 3, 7, 5))
    leaves = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    g = torch.randn(2, 3, 10, 5, dtype=torch.float64)
    grads = []
    for backend in ("math", "auto"):  # math: two attention() calls against identities; auto: direct
        for t in leaves:
            t.grad = None
        out = efficient_attention(*leaves, backend=backend)
        (out * g).sum().backward()
        grads.append((out.detach(), *(t.grad.clone() for t in leaves if t.grad is not None)))
    for ref, fast in zip(*grads, strict=True):
        torch.testing.assert_close(fast, ref)


@pytest.mark.parametrize("backend", ["math", "auto"])
def test_channel_attention_is_xcit_transposed_attention(backend: str) -> None:
    """Both paths (attention() on (B, h, d, N); the direct products on the token layout) against XCiT's
    formula in float64, values and gradients."""
    torch.manual_seed(0)
    ca = ChannelTransposedAttention(8, 2, backend=backend).double()  # type: ignore[arg-type]
    with torch.no_grad():
        ca.temperature.copy_(torch.tensor([0.5, 2.0]).view(2, 1, 1))
    x = torch.randn(3, 11, 8, dtype=torch.float64, requires_grad=True)

    def xcit(x: torch.Tensor) -> torch.Tensor:
        q, k, v = (t.view(3, 11, 2, 4).permute(0, 2, 3, 1) for t in ca.qkv(x).chunk(3, -1))  # (B, h, d, N)
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * ca.temperature).softmax(-1)
        return ca.proj((attn @ v).permute(0, 3, 1, 2).reshape(3, 11, 8))

    y, ref = ca(x), xcit(x)
    torch.testing.assert_close(y, ref)
    up = torch.randn(3, 11, 8, dtype=torch.float64)
    params = (x, ca.temperature, ca.qkv.weight, ca.proj.bias)
    for a, b in zip(torch.autograd.grad((y * up).sum(), params), torch.autograd.grad((ref * up).sum(), params),
                    strict=True):
        torch.testing.assert_close(a, b)


def test_transdae_shapes_and_every_attention_through_core() -> None:
    torch.manual_seed(0)
    model = TransDAE(3, 4, **TINY)
    x = torch.randn(2, 3, 64, 96)
    with record_backends() as used:
        y = model(x)
    assert y.shape == (2, 4, 64, 96)
    # by default the channel and efficient attentions run as direct products (faster on the CPU); with an
    # explicit backend every one goes through attnkit.core.attention
    assert used == []
    ref = TransDAE(3, 4, **TINY, backend="math")
    ref.load_state_dict(model.state_dict())
    with record_backends() as used:
        y_ref = ref(x)
    # per dual block: efficient spatial attention (2 calls) + channel attention (1); inter-scale: 2 per skip
    assert len(used) == 3 * 4 + 2 * 3 and set(used) == {"math"}
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)


def test_transdae_pads_odd_sizes_and_crops_back() -> None:
    torch.manual_seed(0)
    model = TransDAE(3, 2, **TINY).eval()
    x = torch.randn(1, 3, 50, 71)
    y = model(x)
    assert y.shape == (1, 2, 50, 71) and torch.isfinite(y).all()
    # the padded content is zeros: running the zero-padded 64x96 image gives the same logits in the crop
    padded = model(F.pad(x, (0, 96 - 71, 0, 64 - 50)))
    torch.testing.assert_close(y, padded[..., :50, :71])


def test_transdae_every_parameter_gets_gradient() -> None:
    torch.manual_seed(0)
    model = TransDAE(3, 2, **TINY)
    model(torch.randn(2, 3, 64, 64)).logsumexp(1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_transdae_3d_volumes() -> None:
    torch.manual_seed(0)
    model = TransDAE(1, 3, spatial_dims=3, dims=(8, 16, 16), depths=(1, 1, 1), num_heads=(1, 2, 2),
                     sr_ratios=(2, 1, 1), decoder_channels=(16, 8, 8, 8), interaction_dim=8)
    x = torch.randn(1, 1, 20, 33, 17, requires_grad=True)
    with record_backends() as used:
        y = model(x)
    assert y.shape == (1, 3, 20, 33, 17) and used == []  # "auto": direct products only
    y.mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_transdae_without_interaction() -> None:
    model = TransDAE(3, 2, **{**TINY, "interaction_dim": 0}, backend="math")  # math: every attention recorded
    assert model.interaction is None
    with record_backends() as used:
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 2, 32, 32)
    assert len(used) == 3 * 4


def test_transdae_bad_input_and_config_errors() -> None:
    model = TransDAE(3, 2, **TINY)
    with pytest.raises(ValueError, match=r"spatial_dims=2.*got shape \(1, 3, 8, 32, 32\).*spatial_dims=3"):
        model(torch.randn(1, 3, 8, 32, 32))
    with pytest.raises(ValueError, match="built for 3 input channels, got 1"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="depths needs one entry per stage"):
        TransDAE(**{**TINY, "depths": (1, 1)})
    with pytest.raises(ValueError, match="stage width 24 is not divisible by its num_heads 5"):
        TransDAE(**{**TINY, "num_heads": (1, 2, 5, 4)})
    with pytest.raises(ValueError, match="decoder_channels needs len"):
        TransDAE(**{**TINY, "decoder_channels": (16, 8)})
    with pytest.raises(ValueError, match="spatial_dims must be 2"):
        TransDAE(**TINY, spatial_dims=1)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_transdae_segformer_init_scales(spatial_dims: int) -> None:
    torch.manual_seed(0)
    kw = {**TINY, "dims": (32, 64, 96, 128), "num_heads": (1, 2, 2, 4), "spatial_dims": spatial_dims}
    ours, old = TransDAE(**kw), TransDAE(**kw, init="pytorch")
    linears = [(n, m) for n, m in ours.named_modules() if isinstance(m, torch.nn.Linear)]
    old_linears = dict(old.named_modules())
    assert linears and all(n.startswith(("stages", "interaction")) for n, _ in linears)
    for name, lin in linears:
        assert not lin.bias.any()
        if lin.weight.numel() >= 1024:  # SegFormer's trunc_normal_(std=0.02) cuts at +-2 absolute: ~N(0, 0.02)
            assert float(lin.weight.std()) == pytest.approx(0.02, rel=0.15)
            assert float(old_linears[name].weight.std()) > 1.3 * float(lin.weight.std())
    patch = ours.embeds[0]
    fan_out = patch.weight[0, 0].numel() * patch.out_channels
    assert float(patch.weight.std()) == pytest.approx((2 / fan_out) ** 0.5, rel=0.15)
    convs = [m for m in ours.decoder.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    for c in convs:
        assert float(c.weight.std()) == pytest.approx((2 / c.weight[0].numel()) ** 0.5, rel=0.15)  # smp's U-Net
    x = torch.randn(1, 3, *(32,) * spatial_dims)
    assert torch.isfinite(ours(x)).all() and ours(x).shape == (1, 2, *(32,) * spatial_dims)
    with pytest.raises(ValueError, match="init must be"):
        TransDAE(**TINY, init="xavier")  # type: ignore[arg-type]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_transdae_fine_skips_carry_the_input_at_full_resolution(spatial_dims: int) -> None:
    torch.manual_seed(0)
    kw = {**TINY, "spatial_dims": spatial_dims}
    size = (20, 36, 36) if spatial_dims == 3 else (50, 71)
    plain, fine = TransDAE(3, 2, **kw), TransDAE(3, 2, **kw, fine_skips=True)
    assert not any("fine_skips" in k for k in plain.state_dict())  # the paper's layout is unchanged
    assert [m[0].stride for m in fine.fine_skips] == [(2,) * spatial_dims, (1,) * spatial_dims]
    x = torch.randn(1, 3, *size)
    y = fine(x)
    assert y.shape == (1, 2, *size)
    y.logsumexp(1).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in fine.fine_skips.parameters())
    for model in (plain, fine):  # silence everything the encoder and decoder stages pass on
        model.eval()
        last_bn = [m for m in model.decoder[-1].modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)][-1]
        torch.nn.init.zeros_(last_bn.weight)
        torch.nn.init.zeros_(last_bn.bias)
    centre = tuple(s // 2 for s in size)
    x2 = x.clone()
    x2[(0, slice(None), *centre)] += 5.0  # one voxel / pixel
    with torch.no_grad():
        d_plain = (plain(x2) - plain(x)).abs()[0].amax(0)
        d_fine = (fine(x2) - fine(x)).abs()[0].amax(0)
    assert float(d_plain.max()) == 0.0  # stride-4 features only: nothing left to see the change
    assert float(d_fine[centre]) > 0  # the fine skips see it where it happened ...
    changed = d_fine.nonzero()
    reach = (changed - torch.tensor(centre)).abs().amax()
    assert int(reach) <= 12  # ... and only nearby (two 3x3 skip convs, two conv blocks, x2 upsampling)


def test_channel_attention_all_zero_channel_and_half_precision() -> None:
    """The direct path scales Q^T K by the inverse norms instead of normalising q and k: an all-zero channel
    (norm clamped to eps, as in F.normalize) gives the reference's finite values and gradients in float64, and
    bfloat16 inputs (normalised first) stay close to the float64 result."""
    torch.manual_seed(0)
    ca = ChannelTransposedAttention(8, 2).double()
    ref = ChannelTransposedAttention(8, 2, backend="math").double()
    ref.load_state_dict(ca.state_dict())
    with torch.no_grad():
        ca.qkv.weight[0].zero_()  # channel 0 of q and of ...
        ca.qkv.bias[0] = 0.0
        ca.qkv.weight[8 + 5].zero_()  # ... channel 5 of k are zero at every position
        ca.qkv.bias[8 + 5] = 0.0
        ref.load_state_dict(ca.state_dict())
    x = torch.randn(2, 9, 8, dtype=torch.float64, requires_grad=True)
    y, y_ref = ca(x), ref(x)
    torch.testing.assert_close(y, y_ref)
    up = torch.randn_like(y)
    g = torch.autograd.grad((y * up).sum(), (x, ca.qkv.weight, ca.temperature))
    g_ref = torch.autograd.grad((y_ref * up).sum(), (x, ref.qkv.weight, ref.temperature))
    for a, b in zip(g, g_ref, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b)
    half = ChannelTransposedAttention(8, 2).to(torch.bfloat16)
    half.load_state_dict(ca.state_dict())
    yb = half(x.detach().to(torch.bfloat16))
    assert yb.dtype == torch.bfloat16
    torch.testing.assert_close(yb.double(), y_ref.detach(), rtol=0.05, atol=0.05)


def test_inter_scale_interaction_shares_one_context_and_matches_reference() -> None:
    """The direct form computes the shared keys' global context once for all skips; float64 values and
    gradients equal the reference (one efficient_attention() through attention() per skip)."""
    from attnkit.vision.models.transdae import InterScaleInteraction

    torch.manual_seed(0)
    fast = InterScaleInteraction((4, 6, 8), num_skips=2, dim=8, num_heads=2).double()
    ref = InterScaleInteraction((4, 6, 8), num_skips=2, dim=8, num_heads=2, backend="math").double()
    ref.load_state_dict(fast.state_dict())
    feats = [torch.randn(2, c, s, s + 1, dtype=torch.float64, requires_grad=True) for c, s in ((4, 8), (6, 4), (8, 2))]
    with record_backends() as used:
        out = fast(feats)
    assert used == []
    with record_backends() as used:
        out_ref = ref(feats)
    assert len(used) == 2 * 2
    ups = [torch.randn_like(o) for o in out]
    params = [*feats, fast.kv.weight, fast.q.weight]
    g = torch.autograd.grad(sum((o * u).sum() for o, u in zip(out, ups, strict=True)), params)
    g_ref = torch.autograd.grad(sum((o * u).sum() for o, u in zip(out_ref, ups, strict=True)),
                                [*feats, ref.kv.weight, ref.q.weight])
    for a, b in zip([*out, *g], [*out_ref, *g_ref], strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_transdae_conv_stem_keeps_the_first_stage_at_stride_4(spatial_dims: int) -> None:
    torch.manual_seed(0)
    kw = {**TINY, "spatial_dims": spatial_dims}
    size = (20, 36, 36) if spatial_dims == 3 else (50, 71)
    patch, conv = TransDAE(3, 2, **kw), TransDAE(3, 2, **kw, stem="conv")
    assert isinstance(patch.embeds[0], torch.nn.modules.conv._ConvNd)  # the paper's layout is the default
    strides = [m.stride for m in conv.embeds[0] if isinstance(m, torch.nn.modules.conv._ConvNd)]
    assert strides == [(2,) * spatial_dims, (2,) * spatial_dims, (1,) * spatial_dims]
    x = torch.randn(2, 3, *size)
    padded = F.pad(x, [p for s in reversed(size) for p in (0, (-s) % patch.stride)])
    assert [f.shape for f in conv.encode(padded)] == [f.shape for f in patch.encode(padded)]
    y = conv(x)
    assert y.shape == (2, 2, *size)
    y.logsumexp(1).mean().backward()
    missing = [n for n, p in conv.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    # fan-out normal like the patch embedding (SegFormer's conv init), BN at 1 / 0
    first = conv.embeds[0][0]
    assert float(first.weight.std()) == pytest.approx((2 / (first.weight[0, 0].numel() * first.out_channels)) ** 0.5,
                                                      rel=0.2)
    conv.eval()  # zero padding up to the stride changes nothing inside the crop, as with the patch embedding
    with torch.no_grad():
        torch.testing.assert_close(conv(x), conv(padded)[(slice(None), slice(None), *(slice(0, s) for s in size))])
    with pytest.raises(ValueError, match=r"stem must be 'patch'.*got 'vit'"):
        TransDAE(**TINY, stem="vit")  # type: ignore[arg-type]
