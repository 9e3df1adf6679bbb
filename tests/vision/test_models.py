from __future__ import annotations

import copy
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import torch

from attnkit.core import CrossAttentionGate2d, PositionAttention2d, record_backends
from attnkit.core.models import build_model, model_spec
from attnkit.vision import MSGANet, UTransformer, build_encoder, load_encoder_weights
from attnkit.vision.models.utransformer import OPEN_GATE_LOGIT

TINY = "tu-mobilenetv3_small_050"  # a small timm encoder keeps the tests fast


def test_utransformer_shapes_and_attention_through_core() -> None:
    torch.manual_seed(0)
    model = UTransformer(TINY, num_classes=3, num_heads=4, decoder_channels=(32, 16, 16, 8, 8))
    x = torch.randn(2, 3, 64, 96)
    with record_backends() as used:
        y = model(x)
    assert y.shape == (2, 3, 64, 96)
    # one MHSA at the bottleneck + one MHCA gate per skip (4 skips): all through attnkit.core.attention
    assert len(used) == 1 + 4
    assert sum(isinstance(g, CrossAttentionGate2d) for g in model.gates) == 4


def test_utransformer_gates_and_mhsa_receive_gradients() -> None:
    torch.manual_seed(0)
    model = UTransformer(TINY, num_heads=4, decoder_channels=(32, 16, 16, 8, 8), attention_init="paper")
    model(torch.randn(2, 3, 64, 64)).logsumexp(1).mean().backward()
    assert model.mhsa.attn.qkv_proj.weight.grad.abs().sum() > 0
    gate = model.gates[0]
    assert gate.q_proj.weight.grad.abs().sum() > 0 and gate.v_proj.weight.grad.abs().sum() > 0


def test_utransformer_unet_init_leaves_its_start_after_one_step() -> None:
    # the default init starts at zero (MHSA's gamma, gates' output-norm weight): the first step moves exactly
    # those, and after it the attention's projections receive gradients too
    torch.manual_seed(0)
    model = UTransformer(TINY, num_heads=4, decoder_channels=(32, 16, 16, 8, 8))
    x = torch.randn(2, 3, 64, 64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(x).logsumexp(1).mean().backward()
    gate = model.gates[0]
    assert model.mhsa.gamma.grad.abs().sum() > 0 and gate.out_norm.weight.grad.abs().sum() > 0
    assert model.mhsa.attn.out_proj.weight.grad.abs().sum() == 0
    opt.step()
    opt.zero_grad()
    model(x).logsumexp(1).mean().backward()
    assert model.mhsa.attn.qkv_proj.weight.grad.abs().sum() > 0
    assert model.mhsa.attn.out_proj.weight.grad.abs().sum() > 0
    assert gate.q_proj.weight.grad.abs().sum() > 0 and gate.v_proj.weight.grad.abs().sum() > 0


class _ConstantGate(torch.nn.Module):
    """A skip "gate" without attention: multiplies the skip by a constant."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return skip * self.value


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_utransformer_unet_init_is_a_unet_without_attention(train: bool) -> None:
    torch.manual_seed(0)
    model = UTransformer(TINY, num_heads=4, decoder_channels=(32, 16, 16, 8, 8), attention_init="unet").train(train)
    x = torch.randn(2, 3, 64, 64)
    # the same weights with the attention taken out: no bottleneck MHSA, every skip scaled by sigmoid(3)
    plain = copy.deepcopy(model)
    plain.mhsa = torch.nn.Identity()
    open_value = torch.sigmoid(torch.tensor(OPEN_GATE_LOGIT)).item()
    plain.gates = torch.nn.ModuleList(_ConstantGate(open_value) if isinstance(g, CrossAttentionGate2d) else g
                                      for g in model.gates)
    torch.testing.assert_close(model(x), plain(x))
    # the paper's init is not that U-Net: its attention changes the output at init
    torch.manual_seed(0)
    paper = UTransformer(TINY, num_heads=4, decoder_channels=(32, 16, 16, 8, 8), attention_init="paper").train(train)
    plain.load_state_dict(paper.state_dict(), strict=False)
    assert not torch.allclose(paper(x), plain(x), atol=1e-3)
    # checkpoints load across inits (the paper init has no mhsa.gamma: it is set to 1), with the same function
    model.load_state_dict(paper.state_dict(), strict=True)
    torch.testing.assert_close(model(x), paper(x))
    with pytest.raises(ValueError, match="attention_init"):
        UTransformer(TINY, num_heads=4, decoder_channels=(32, 16, 16, 8, 8), attention_init="zero")  # type: ignore[arg-type]


def test_utransformer_branch_norm_reaches_the_bottleneck_and_round_trips_through_its_spec() -> None:
    torch.manual_seed(0)
    kw = {"num_heads": 4, "decoder_channels": (32, 16, 16, 8, 8)}
    model = UTransformer(TINY, branch_norm=True, **kw).eval()
    assert model.mhsa.branch_norm
    x = torch.randn(2, 3, 64, 64)
    plain = UTransformer(TINY, **kw).eval()
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(x), plain(x))  # gamma = 0: both are the U-Net at init
    with torch.no_grad():
        model.mhsa.gamma.fill_(0.5)  # type: ignore[union-attr]
        plain.mhsa.gamma.fill_(0.5)  # type: ignore[union-attr]
        assert not torch.allclose(model(x), plain(x), atol=1e-4)  # the norm changes the function once gamma moves
        spec = model_spec(model)
        assert spec is not None and spec["init_args"]["branch_norm"] is True
        rebuilt = build_model(spec)
        rebuilt.load_state_dict(model.state_dict())
        torch.testing.assert_close(rebuilt.eval()(x), model(x))
    with pytest.raises(ValueError, match="branch_norm=True needs attention_init='unet'"):
        UTransformer(TINY, attention_init="paper", branch_norm=True, **kw)


def test_utransformer_default_decoder_init_matches_smp_unet_scales() -> None:
    torch.manual_seed(0)
    kw = {"num_heads": 4, "decoder_channels": (32, 16, 16, 8, 8)}
    ours, default = UTransformer(TINY, **kw), UTransformer(TINY, decoder_init="pytorch", **kw)
    ref = smp.Unet(TINY, encoder_weights=None, decoder_channels=(32, 16, 16, 8, 8), classes=2)
    convs = [m for m in ours.blocks.modules() if isinstance(m, torch.nn.Conv2d)]
    ref_convs = [m for m in ref.decoder.blocks.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.weight.shape for c in convs] == [c.weight.shape for c in ref_convs]
    for c, r, d in zip(convs, ref_convs, [m for m in default.blocks.modules() if isinstance(m, torch.nn.Conv2d)],
                       strict=True):
        fan_in = c.weight[0].numel()
        assert c.weight.abs().max() <= (6 / fan_in) ** 0.5  # Kaiming-uniform bound, ReLU gain
        assert float(c.weight.std()) == pytest.approx(float(r.weight.std()), rel=0.15)
        # PyTorch's default init: 2.45x smaller
        assert float(d.weight.std()) == pytest.approx(float(c.weight.std()) / 6**0.5, rel=0.15)
    assert float(ours.head.conv.weight.std()) == pytest.approx(float(ref.segmentation_head[0].weight.std()), rel=0.3)
    assert not ours.head.conv.bias.any()
    gate = next(g for g in ours.gates if isinstance(g, CrossAttentionGate2d))
    twin = next(g for g in default.gates if isinstance(g, CrossAttentionGate2d))
    assert sorted(n for n, _ in gate.named_parameters()) == sorted(n for n, _ in twin.named_parameters())
    with pytest.raises(ValueError, match="decoder_init"):
        UTransformer(TINY, decoder_init="xavier", **kw)  # type: ignore[arg-type]


def test_utransformer_gated_skips_limits_gates() -> None:
    model = UTransformer(TINY, num_heads=4, gated_skips=2, decoder_channels=(32, 16, 16, 8, 8))
    assert [isinstance(g, CrossAttentionGate2d) for g in model.gates] == [True, True, False, False, False]
    with record_backends() as used:
        model(torch.randn(1, 3, 64, 64))
    assert len(used) == 3


def test_utransformer_rejects_sizes_not_divisible_by_stride() -> None:
    model = UTransformer(TINY, num_heads=4, decoder_channels=(32, 16, 16, 8, 8))
    with pytest.raises(ValueError, match="not divisible by the encoder stride 32"):
        model(torch.randn(1, 3, 50, 64))


def test_utransformer_bad_heads_and_decoder_length() -> None:
    with pytest.raises(ValueError, match="num_heads=7"):
        UTransformer(TINY, num_heads=7)
    with pytest.raises(ValueError, match="decoder_channels needs encoder_depth=5"):
        UTransformer(TINY, num_heads=4, decoder_channels=(16, 8))


def test_msga_forward_skips_deep_supervision_but_predicts_the_same() -> None:
    """forward() (inference, sliding windows) gives forward_with_aux()'s logits without running the
    deep-supervision heads or the guiding / reconstruction losses."""
    torch.manual_seed(0)
    for fine in (False, True):
        model = MSGANet(TINY, num_classes=2, channels=16, fine_decoder=fine).eval()
        x = torch.randn(2, 3, 64, 64)
        calls: list[str] = []
        for i, h in enumerate(model.aux_heads):
            h.register_forward_hook(lambda *_, i=i, calls=calls: calls.append(f"aux{i}"))
        with torch.no_grad():
            full = model.forward_with_aux(x)
            assert len(calls) == 4
            calls.clear()
            y = model(x)
        assert calls == []
        torch.testing.assert_close(y, full.logits, rtol=0, atol=0)


def test_msga_aux_outputs_and_losses() -> None:
    torch.manual_seed(0)
    model = MSGANet(TINY, num_classes=2, channels=16)
    x = torch.randn(2, 3, 64, 64)
    with record_backends() as used:
        out = model.forward_with_aux(x)
    # 4 scales x 2 guided steps x (position attention + channel attention), all through attention(); the
    # channel attention over a 16x16 map (256 positions as its "head") runs the matmul backend
    assert len(used) == 16 and used.count("matmul") == 8
    assert out.logits.shape == (2, 2, 64, 64)
    assert len(out.aux_logits) == 8 and all(a.shape == (2, 2, 64, 64) for a in out.aux_logits)
    assert set(out.aux_losses) == {"guide", "recon"}
    assert all(torch.isfinite(v) and v > 0 for v in out.aux_losses.values())
    (out.logits.mean() + sum(out.aux_losses.values())).backward()
    assert model.attn[0].step1.encdec.enc[0].weight.grad.abs().sum() > 0
    model.eval()
    assert torch.allclose(model(x), model.forward_with_aux(x).logits)


def test_msga_danet_position_attention() -> None:
    """The paper's DANet position attention: C/8 queries/keys, zero-initialised gamma, trained by the loss."""
    torch.manual_seed(0)
    model = MSGANet(TINY, num_classes=2, channels=16, position_attention="danet")
    pam = model.attn[0].step1.pam
    assert isinstance(pam, PositionAttention2d) and pam.qk_dim == 2
    out = model.forward_with_aux(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 2, 64, 64)
    (out.logits.square().mean() + sum(out.aux_losses.values())).backward()
    assert pam.gamma.grad is not None and pam.gamma.grad.abs() > 0  # gamma = 0 still gets a gradient
    assert pam.proj.weight.grad is not None
    with pytest.raises(ValueError, match="position_attention must be 'mha' or 'danet'"):
        MSGANet(TINY, position_attention="sagan")  # type: ignore[arg-type]


def test_local_encoder_weights_round_trip(tmp_path: Path) -> None:
    src = build_encoder("resnet18", depth=5)
    path = tmp_path / "enc.pth"
    torch.save(src.state_dict(), path)
    model = UTransformer("resnet18", encoder_weights=str(path), num_heads=8)
    for k, v in src.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[k], v)
    # a whole smp model's state dict (keys prefixed "encoder.") works too
    unet = smp.Unet("resnet18", encoder_weights=None, classes=2)
    torch.save({"state_dict": unet.state_dict()}, tmp_path / "unet.ckpt")
    enc = load_encoder_weights(build_encoder("resnet18"), tmp_path / "unet.ckpt")
    assert torch.equal(enc.conv1.weight, unet.encoder.conv1.weight)


def test_encoder_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.pth does not exist"):
        UTransformer("resnet18", encoder_weights=str(tmp_path / "missing.pth"))
    torch.save(build_encoder("resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="does not fit the encoder"):
        UTransformer("resnet34", encoder_weights=str(tmp_path / "r18.pth"))


def test_utransformer_gate_stride_pools_only_finer_gates() -> None:
    torch.manual_seed(0)
    model = UTransformer(TINY, num_heads=4, decoder_channels=(32, 16, 16, 8, 8), gate_stride=8)
    # decoder maps gating the skips sit at strides 32, 16, 8, 4: only the stride-4 one is pooled (by 2)
    assert [g.pool for g in model.gates[:4]] == [1, 1, 1, 2]
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 2, 64, 64)
    assert [g.pool for g in UTransformer(TINY, num_heads=4, decoder_channels=(32, 16, 16, 8, 8)).gates[:4]] == [1] * 4
    with pytest.raises(ValueError, match="gate_stride must be a power of two"):
        UTransformer(TINY, num_heads=4, gate_stride=6)


@pytest.mark.parametrize("position_attention", ["mha", "danet"])
def test_msganet_attention_kv_stride(position_attention: str) -> None:
    torch.manual_seed(0)
    model = MSGANet(TINY, channels=16, position_attention=position_attention,  # type: ignore[arg-type]
                    attention_kv_stride=2)
    assert all(m.kv_stride == 2 for m in model.modules() if hasattr(m, "kv_stride"))
    out = model.forward_with_aux(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 2, 64, 64)


def _fit_accuracy(model: MSGANet, x: torch.Tensor, target: torch.Tensor, steps: int) -> float:
    """Pixel accuracy on ``(x, target)`` after ``steps`` Adam steps on its cross-entropy (training outputs)."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model.forward_with_aux(x).logits, target).backward()
        opt.step()
    with torch.no_grad():
        return (model.forward_with_aux(x).logits.argmax(1) == target).float().mean().item()


def test_msganet_fine_decoder_starts_as_the_paper_and_learns_detail_below_stride_4() -> None:
    torch.manual_seed(0)
    paper = MSGANet(TINY, channels=16).eval()
    torch.manual_seed(0)
    fine = MSGANet(TINY, channels=16, fine_decoder=True, fine_channels=8).eval()
    assert paper.fine is None and fine.fine is not None
    paper.load_state_dict({k: v for k, v in fine.state_dict().items() if not k.startswith("fine.")})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(paper(x), fine(x))  # zero-initialised head: the paper's prediction at step 0
    # stripes 2 px wide: a bilinear 4x upsampling of stride-4 logits cannot draw them, stride 2 can
    target = (torch.arange(64) // 2 % 2).expand(2, 64, 64)
    accuracy = {name: _fit_accuracy(model, x, target, 60) for name, model in (("paper", paper), ("fine", fine))}
    assert accuracy["paper"] < 0.6 and accuracy["fine"] > 0.95, accuracy


def test_msganet_fine_stride_1_starts_as_the_stride_2_model_and_learns_single_pixels() -> None:
    torch.manual_seed(0)
    coarse = MSGANet(TINY, channels=16, fine_decoder=True, fine_channels=8).eval()
    torch.manual_seed(0)
    fine = MSGANet(TINY, channels=16, fine_decoder=True, fine_channels=8, fine_stride=1).eval()
    assert coarse.fine1 is None and fine.fine1 is not None
    missing = fine.load_state_dict(coarse.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("fine1.") for k in missing)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(coarse(x), fine(x))  # zero-initialised full-resolution head
    target = (x[:, 0] > 0).long()  # a class drawn per pixel by the input: no stride-2 map can draw it
    accuracy = {name: _fit_accuracy(model, x, target, 40) for name, model in (("stride 2", coarse), ("stride 1", fine))}
    assert accuracy["stride 2"] < 0.7 and accuracy["stride 1"] > 0.95, accuracy
    with pytest.raises(ValueError, match="fine_decoder=True"):
        MSGANet(TINY, fine_stride=1)
    with pytest.raises(ValueError, match="fine_stride must be"):
        MSGANet(TINY, fine_decoder=True, fine_stride=4)  # type: ignore[arg-type]


def test_msganet_smp_init_scales_its_own_layers_and_keeps_the_encoder_and_the_zero_correction() -> None:
    kw = {"channels": 16, "fine_decoder": True, "fine_channels": 8}
    torch.manual_seed(0)
    smp_init = MSGANet(TINY, init="smp", **kw)
    torch.manual_seed(0)
    default = MSGANet(TINY, **kw)
    enc, enc_default = smp_init.encoder.state_dict(), default.encoder.state_dict()
    assert all(torch.equal(enc[k], enc_default[k]) for k in enc)  # the encoder is drawn first and left alone
    body = [smp_init.scales, smp_init.fuse, smp_init.attn, smp_init.refine, smp_init.fine[0]]
    body_default = [default.scales, default.fuse, default.attn, default.refine, default.fine[0]]
    convs = [m for part in body for m in part.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    convs_default = [m for part in body_default for m in part.modules()
                     if isinstance(m, torch.nn.modules.conv._ConvNd)]
    assert len(convs) == len(convs_default) > 20
    for c, d in zip(convs, convs_default, strict=True):
        fan_in = torch.nn.init._calculate_fan_in_and_fan_out(c.weight)[0]
        assert c.weight.abs().max() <= (6 / fan_in) ** 0.5 + 1e-6  # Kaiming-uniform bound, ReLU gain
        if c.weight.numel() > 500:  # PyTorch's default: 2.45x smaller
            assert float(d.weight.detach().std()) == pytest.approx(float(c.weight.detach().std()) / 6**0.5, rel=0.2)
        assert c.bias is None or not c.bias.any()
    for head in [*smp_init.heads, *smp_init.aux_heads]:
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(head.weight)
        assert head.weight.abs().max() <= (6 / (fan_in + fan_out)) ** 0.5 + 1e-6  # Xavier-uniform bound
        assert float(head.weight.detach().std()) > 0.5 * (2 / (fan_in + fan_out)) ** 0.5
    assert not smp_init.fine[1].weight.any() and not smp_init.fine[1].bias.any()  # starts as the paper's model
    attn, attn_default = smp_init.attn[0].step1.pam, default.attn[0].step1.pam  # attention projections untouched
    assert all(torch.equal(a, b) for a, b in zip(attn.parameters(), attn_default.parameters(), strict=True))
    x = torch.randn(2, 3, 64, 64)
    assert smp_init(x).shape == (2, 2, 64, 64)
    assert sorted(smp_init.state_dict()) == sorted(default.state_dict())  # checkpoints load across inits
    with pytest.raises(ValueError, match="init must be"):
        MSGANet(TINY, init="xavier")  # type: ignore[arg-type]


def test_msganet_open_attention_init_starts_every_gate_at_0_95_and_opens_both_steps_in_training() -> None:
    kw = {"channels": 16, "attention_kv_stride": 2}
    torch.manual_seed(0)
    paper = MSGANet(TINY, **kw)
    torch.manual_seed(0)
    model = MSGANet(TINY, attention_init="open", **kw)
    assert sorted(model.state_dict()) == sorted(paper.state_dict())  # checkpoints load across inits
    fs, ms = torch.randn(2, 16, 16, 16), torch.randn(2, 16, 16, 16)
    with torch.no_grad():
        for module in model.attn:
            out, _, _ = module(fs, ms)
            torch.testing.assert_close(out, torch.full_like(out, torch.sigmoid(torch.tensor(3.0)).item()))
        assert paper.attn[0](fs, ms)[0].std() > 0.1  # the paper's start: a map drawn by the init
    x = torch.randn(2, 3, 64, 64)
    target = (x[:, 0] > 0).long()
    _fit_accuracy(model, x, target, 4)  # the second step opens first, then the first (its output feeds the second)
    with torch.no_grad():
        a1, _, _ = model.attn[0].step1(model.attn[0].reduce(torch.cat([fs, ms], 1)))
        out, _, _ = model.attn[0](fs, ms)
    assert a1.std() > 1e-2 and out.std() > 1e-2
    with pytest.raises(ValueError, match="attention_init must be"):
        MSGANet(TINY, attention_init="unet")  # type: ignore[arg-type]


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_conv_concat_is_the_convolution_of_the_concatenation(dims: int) -> None:
    """The decoders' split convolution equals conv(cat(parts)): forward and every gradient, in float64 and in
    channels-last; grouped convolutions fall back to the concatenation; a channel count mismatch is named."""
    from attnkit.vision.models.blocks import conv_concat, sequential_concat

    conv_t = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[dims]
    g = torch.Generator().manual_seed(0)
    size = (9,) * dims
    conv = conv_t(7, 5, 3, stride=2, padding=1, dilation=1).double()
    parts = [torch.randn(2, c, *size, generator=g, dtype=torch.float64, requires_grad=True) for c in (4, 1, 2)]
    want = conv(torch.cat(parts, 1))
    gw = torch.autograd.grad(want.square().sum(), [*parts, conv.weight, conv.bias])
    got = conv_concat(conv, parts)
    gg = torch.autograd.grad(got.square().sum(), [*parts, conv.weight, conv.bias])
    torch.testing.assert_close(got, want)
    for a, b in zip(gg, gw, strict=True):
        torch.testing.assert_close(a, b)
    block = torch.nn.Sequential(conv, torch.nn.ReLU())
    torch.testing.assert_close(sequential_concat(block, parts), block(torch.cat(parts, 1)))
    nested = torch.nn.Sequential(block, conv_t(5, 2, 1).double())  # starts with a block, as MSGANet's fine decoder
    torch.testing.assert_close(sequential_concat(nested, parts), nested(torch.cat(parts, 1)))
    torch.testing.assert_close(sequential_concat(conv, parts), want)  # a bare convolution: a block of one
    with pytest.raises(ValueError, match="6 channels together, the convolution takes 7"):
        conv_concat(conv, parts[:1] + parts[2:])
    grouped = conv_t(8, 4, 1, groups=2).double()
    two = [torch.randn(1, 4, *size, generator=g, dtype=torch.float64) for _ in range(2)]
    torch.testing.assert_close(conv_concat(grouped, two), grouped(torch.cat(two, 1)))
    if dims == 2:
        cl = torch.nn.Conv2d(48, 16, 3, padding=1).to(memory_format=torch.channels_last)
        a = torch.randn(2, 32, 16, 16, generator=g).contiguous(memory_format=torch.channels_last)
        b = torch.randn(2, 16, 16, 16, generator=g).contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(conv_concat(cl, [a, b]), cl(torch.cat([a, b], 1)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("num_parameters", [1, 3])
@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 3, 2, 3, 4)])
def test_prelu_matches_torch_in_value_and_gradients(num_parameters: int, shape: tuple[int, ...]) -> None:
    """attnkit's PReLU (branch-free backward) against torch.nn.PReLU in float64, zeros included; channels-last
    maps keep their layout; same parameter name and initial value (checkpoints load either way)."""
    from attnkit.vision.models.blocks import PReLU, _PReLUFunction

    g = torch.Generator().manual_seed(0)
    ours, ref = PReLU(num_parameters).double(), torch.nn.PReLU(num_parameters).double()
    assert ours.state_dict().keys() == ref.state_dict().keys()
    torch.testing.assert_close(ours.weight, ref.weight)
    with torch.no_grad():
        w = torch.rand(num_parameters, generator=g, dtype=torch.float64)
        ours.weight.copy_(w)
        ref.weight.copy_(w)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    x.view(-1)[::4] = 0.0  # the kink: the slope side, as in PyTorch
    up = torch.randn(*shape, generator=g, dtype=torch.float64)
    if len(shape) == 4:
        x, up = x.contiguous(memory_format=torch.channels_last), up.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y, y_ref = ours(x), ref(x)
    torch.testing.assert_close(y, y_ref)
    got = torch.autograd.grad((y * up).sum(), (x, ours.weight))
    want = torch.autograd.grad((y_ref * up).sum(), (x, ref.weight))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
    if len(shape) == 4:
        assert got[0].is_contiguous(memory_format=torch.channels_last)
        # and a gradient in the other memory order than the input
        got = torch.autograd.grad((ours(x) * up.contiguous()).sum(), (x, ours.weight))
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b)
    # and against finite differences, away from the kink
    xs = (torch.rand(2, 3, 4, generator=g, dtype=torch.float64) + 0.1) * torch.tensor([1.0, -1.0]).repeat(6)[:4]
    assert torch.autograd.gradcheck(_PReLUFunction.apply, (xs.requires_grad_(True), w.clone().requires_grad_(True)))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize(("dims", "kernel", "groups", "sizes"),
                         [(2, 7, 6, (11, 13)), (2, 5, 1, (10, 9)), (3, 3, 4, (7, 5, 8)), (1, 7, 1, (17,))])
def test_dilated_conv_on_sub_grids_is_the_dilated_convolution(layout: str, dims: int, kernel: int, groups: int,
                                                              sizes: tuple[int, ...]) -> None:
    """Space-to-batch against the dilated convolution in float64: values and every gradient, sizes that are not
    multiples of the dilation, grouped and dense weights, the layout kept; other convolutions fall back."""
    from attnkit.vision.models.blocks import dilated_conv

    conv_cls = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[dims]
    g = torch.Generator().manual_seed(dims * kernel)
    torch.manual_seed(dims * kernel)
    channels = 6 if dims == 2 else 4
    conv = conv_cls(channels, channels if groups > 1 else 5, kernel, padding=3 * (kernel // 2), dilation=3,
                    groups=groups).double()
    x = torch.randn(2, conv.in_channels, *sizes, generator=g, dtype=torch.float64)
    fmt = {2: torch.channels_last, 3: torch.channels_last_3d}.get(dims)
    if layout == "channels_last" and fmt is not None:
        x = x.contiguous(memory_format=fmt)
    x.requires_grad_(True)
    want, got = conv(x), dilated_conv(conv, x)
    torch.testing.assert_close(got, want)
    if layout == "channels_last" and fmt is not None:
        assert got.is_contiguous(memory_format=fmt)
    up = torch.randn(want.shape, generator=g, dtype=torch.float64)
    params = (x, conv.weight, conv.bias)
    for a, b in zip(torch.autograd.grad((got * up).sum(), params), torch.autograd.grad((want * up).sum(), params),
                    strict=True):
        torch.testing.assert_close(a, b)
    # not a "same" dilated convolution: the plain call
    for other in (conv_cls(4, 4, 3, padding=1), conv_cls(4, 4, 3, padding=2, dilation=2, stride=2),
                  conv_cls(4, 4, 3, padding=1, dilation=2)):
        y = torch.randn(1, 4, *([9] * dims))
        torch.testing.assert_close(dilated_conv(other, y), other(y))
