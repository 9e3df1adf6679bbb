"""Every backend and mask kind against the math reference: float64 forward and backward, float32 tolerances.

FlexAttention runs two ways here: eagerly (torch's reference implementation of flex, any dtype, our
BlockMask lowering and our CPU backward) in float64 for every mask, and compiled (inductor, float32 only
on CPU) for a representative mask shared by a module-scoped fixture because each compile costs ~10-40 s
on a shared 2-core machine. The exhaustive random sweep is marked slow.
"""

from __future__ import annotations

import math

import pytest
import torch

from attnkit.core import (
    BackendUnavailableError,
    BoolMask,
    CausalMask,
    DiagonalMask,
    DocumentMask,
    KeyPaddingMask,
    Mask,
    SlidingWindowMask,
    attention,
    record_backends,
)
from attnkit.core.attention import choose_backend, flex

F64 = {"atol": 1e-10, "rtol": 1e-9}
#: Documented float32 tolerance against a float64 reference, for outputs and gradients of O(1) inputs.
F32 = {"atol": 2e-5, "rtol": 1e-4}


def _mask_cases(b: int, lq: int, lk: int) -> dict[str, Mask | None]:
    g = torch.Generator().manual_seed(lq * 100 + lk)
    lengths = torch.randint(1, lk + 1, (b,), generator=g)
    lengths[0] = 0  # a fully padded batch entry: every row fully masked
    valid = torch.rand(b, lk, generator=g) > 0.3
    rand = torch.rand(b, 1, lq, lk, generator=g) > 0.5
    rand[:, :, 0] = False  # a fully masked row
    qdoc = torch.sort(torch.randint(0, 3, (b, lq), generator=g), dim=1).values
    kdoc = torch.sort(torch.randint(0, 3, (b, lk), generator=g), dim=1).values
    return {
        "none": None,
        "causal": CausalMask(),
        "padding_lengths": KeyPaddingMask(lengths),
        "padding_bool": KeyPaddingMask(valid),
        "diagonal": DiagonalMask(),
        "window": SlidingWindowMask(3),
        "window_causal": SlidingWindowMask(2, causal=True),
        "document": DocumentMask(qdoc, kdoc),
        "bool": BoolMask(rand),
        "padding&causal": KeyPaddingMask(lengths) & CausalMask(),
        "diagonal&causal": DiagonalMask() & CausalMask(),  # row 0 fully masked
        "window|document": SlidingWindowMask(2) | DocumentMask(qdoc, kdoc),
    }


SHAPES = [  # (B, H, Lq, Lk, D, Dv): self, cross Lq != Lk, length 1, odd head sizes
    (2, 2, 7, 7, 5, 5),
    (2, 3, 5, 9, 3, 7),
    (2, 2, 6, 4, 8, 3),  # D > Dv
    (2, 1, 1, 1, 1, 1),
]
MASK_NAMES = list(_mask_cases(2, 4, 4))


def _inputs(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    b, h, lq, lk, d, dv = shape
    g = torch.Generator().manual_seed(seed)
    # Drawn in float64 and cast, so float32 runs see the same numbers as the float64 reference.
    return [
        torch.randn(b, h, lq, d, generator=g, dtype=torch.float64).to(dtype).requires_grad_(),
        torch.randn(b, h, lk, d, generator=g, dtype=torch.float64).to(dtype).requires_grad_(),
        torch.randn(b, h, lk, dv, generator=g, dtype=torch.float64).to(dtype).requires_grad_(),
    ]


def _run(backend: str, shape: tuple[int, ...], mask: Mask | None, dtype: torch.dtype,
         with_bias: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
    q, k, v = _inputs(shape, dtype)
    leaves = [q, k, v]
    bias = None
    if with_bias:
        _, h, lq, lk = shape[:4]
        bias = torch.randn(1, h, lq, lk, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
        bias = bias.to(dtype).requires_grad_()
        leaves.append(bias)
    with record_backends() as used:
        out = attention(q, k, v, mask, backend=backend, bias=bias)  # type: ignore[arg-type]
    assert used == [backend]
    assert isinstance(out, torch.Tensor)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(dtype)
    (out * w).sum().backward()
    return out.detach(), [t.grad for t in leaves]  # type: ignore[misc]


def _check_close(got: tuple[torch.Tensor, list[torch.Tensor]], ref: tuple[torch.Tensor, list[torch.Tensor]],
                 tol: dict[str, float]) -> None:
    assert not torch.isnan(got[0]).any()
    torch.testing.assert_close(got[0].to(ref[0].dtype), ref[0], **tol)
    for g, r in zip(got[1], ref[1], strict=True):
        assert g is not None and torch.isfinite(g).all()
        torch.testing.assert_close(g.to(r.dtype), r, **tol)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mask_name", MASK_NAMES)
@pytest.mark.parametrize("backend", ["sdpa", "flex", "matmul"])
def test_backend_matches_math_float64(backend: str, mask_name: str, shape: tuple[int, ...]) -> None:
    mask = _mask_cases(shape[0], shape[2], shape[3])[mask_name]
    ref = _run("math", shape, mask, torch.float64)
    with flex.eager_mode():
        got = _run(backend, shape, mask, torch.float64)
    _check_close(got, ref, F64)


@pytest.mark.parametrize("mask_name", ["none", "causal", "padding&causal", "window", "bool"])
@pytest.mark.parametrize("backend", ["math", "sdpa", "flex", "matmul"])
def test_additive_bias_float64(backend: str, mask_name: str) -> None:
    shape = (2, 2, 6, 8, 4, 4)
    mask = _mask_cases(2, 6, 8)[mask_name]
    q, k, v = _inputs(shape, torch.float64)
    bias = torch.randn(1, 2, 6, 8, dtype=torch.float64, requires_grad=True)
    # Reference written out: softmax(q k^T / sqrt(d) + bias) v over the allowed keys, zeros for empty rows.
    s = q @ k.transpose(-2, -1) / math.sqrt(4) + bias
    full = torch.ones(2, 1, 6, 8, dtype=torch.bool)
    allowed = full if mask is None else mask.dense(6, 8).expand(2, 1, 6, 8)
    p = torch.softmax(s.masked_fill(~allowed, -math.inf), -1).nan_to_num(0.0)
    ref_out = p @ v
    gw = torch.randn(ref_out.shape, dtype=torch.float64)
    ref_grads = torch.autograd.grad((ref_out * gw).sum(), [q, k, v, bias])
    with flex.eager_mode():
        out = attention(q, k, v, mask, backend=backend, bias=bias)  # type: ignore[arg-type]
    assert isinstance(out, torch.Tensor)
    grads = torch.autograd.grad((out * gw).sum(), [q, k, v, bias])
    torch.testing.assert_close(out, ref_out, **F64)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, **F64)


@pytest.mark.parametrize("mask_name", ["causal", "padding&causal", "document", "bool"])
def test_sdpa_float32_within_documented_tolerance(mask_name: str) -> None:
    shape = (2, 2, 33, 33, 16, 16)
    mask = _mask_cases(2, 33, 33)[mask_name]
    ref = _run("math", shape, mask, torch.float64)
    got = _run("sdpa", shape, mask, torch.float32)
    _check_close(got, ref, F32)


@pytest.fixture(scope="module")
def compiled_flex_case() -> dict[str, object]:
    """One compiled FlexAttention run (float32, key padding with an empty sequence & causal), shared."""
    if not flex.is_available(torch.zeros(1, dtype=torch.float32)):
        pytest.skip(f"compiled FlexAttention unavailable: {flex.unavailable_reason(torch.zeros(1))}")
    shape = (2, 2, 160, 160, 16, 16)
    lengths = torch.tensor([0, 130])
    mask = KeyPaddingMask(lengths) & CausalMask()
    ref = _run("math", shape, mask, torch.float64)
    got = _run("flex", shape, mask, torch.float32)
    return {"ref": ref, "got": got, "lengths": lengths}


def test_compiled_flex_float32_matches_math(compiled_flex_case: dict[str, object]) -> None:
    got, ref = compiled_flex_case["got"], compiled_flex_case["ref"]
    _check_close(got, ref, F32)  # type: ignore[arg-type]


def test_compiled_flex_fully_masked_rows_are_zero(compiled_flex_case: dict[str, object]) -> None:
    out, grads = compiled_flex_case["got"]  # type: ignore[misc]
    assert torch.equal(out[0], torch.zeros_like(out[0]))  # batch entry 0 has no valid key at all
    assert torch.equal(grads[0][0], torch.zeros_like(grads[0][0]))  # and its queries get no gradient
    assert out[1].abs().sum() > 0


def test_compiled_flex_rejects_float64_by_name() -> None:
    q = torch.randn(1, 1, 8, 4, dtype=torch.float64)
    with pytest.raises(BackendUnavailableError, match="float64"):
        attention(q, q, q, CausalMask(), backend="flex")


def test_flex_by_name_rejects_dropout() -> None:
    q = torch.randn(1, 1, 8, 4)
    with pytest.raises(BackendUnavailableError, match="dropout"):
        attention(q, q, q, backend="flex", dropout=0.1)


@pytest.mark.parametrize(("d", "dv"), [(8, 64), (64, 8)])
def test_sdpa_uses_fused_cpu_kernel_for_unequal_head_sizes(d: int, dv: int) -> None:
    """Narrow queries/keys (DANet's position attention) still reach PyTorch's fused CPU kernel."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, 300, d, generator=g), torch.randn(2, 1, 300, d, generator=g)
    v = torch.randn(2, 1, 300, dv, generator=g)
    ref = attention(q.double(), k.double(), v.double(), backend="math", scale=0.3)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # math is not allowed here: unpadded inputs would fail
        for mask in (None, KeyPaddingMask(torch.tensor([300, 17]))):
            got = attention(q, k, v, mask, backend="sdpa", scale=0.3)
            want = ref if mask is None else attention(q.double(), k.double(), v.double(), mask, backend="math",
                                                      scale=0.3)
            assert got.shape == (2, 1, 300, dv)
            torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=1e-4)


def test_sdpa_uses_fused_cpu_kernel_for_strided_head_dims() -> None:
    """Inputs whose head dimension is strided (DANet's channel attention on a channels-last map: the tokens are
    channels, the features are positions, stride C apart) still reach the fused kernel, not the math path."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from attnkit.core import ChannelAttention2d

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 12, 10, generator=g).contiguous(memory_format=torch.channels_last)
    feats = x.flatten(2).unsqueeze(1)  # (B, 1, C, N), stride C along N
    assert feats.stride(-1) == 16
    want = attention(-feats.double(), feats.double(), feats.double(), backend="math", scale=1.0)
    block = ChannelAttention2d(backend="sdpa")
    with torch.no_grad():
        block.gamma.fill_(0.5)
    ref = block(x.double().contiguous())
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # math is not allowed here: strided inputs would fail
        got = attention(-feats, feats, feats, backend="sdpa", scale=1.0)
        y = block(x)
    torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(y.double(), ref, atol=2e-5, rtol=1e-4)


def test_weights_only_from_math() -> None:
    q = torch.randn(1, 2, 5, 4)
    with pytest.raises(BackendUnavailableError, match="weights"):
        attention(q, q, q, backend="sdpa", return_weights=True)
    with record_backends() as used:
        _, w = attention(q, q, q, CausalMask(), return_weights=True)  # type: ignore[misc]
    assert used == ["math"]
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 2, 5))
    assert torch.equal(w.triu(1), torch.zeros_like(w))


def test_auto_choices() -> None:
    q = torch.randn(1, 1, 16, 8)
    assert choose_backend(q, q, None)[0] == "sdpa"
    assert choose_backend(q, q, CausalMask())[0] == "sdpa"
    assert choose_backend(q, q, None, return_weights=True)[0] == "math"
    long = torch.randn(1, 1, 2048, 8)
    expect = "flex" if flex.is_available(long) else "sdpa"
    docs = DocumentMask(torch.arange(2048) // 100)
    assert choose_backend(long, long, docs)[0] == expect
    assert choose_backend(long, long, SlidingWindowMask(128))[0] == "local"  # see test_attention_local.py
    assert choose_backend(long, long, docs, dropout=0.1)[0] == "sdpa"
    assert choose_backend(long.double(), long.double(), docs)[0] == "sdpa"
    assert choose_backend(long, long, docs, bias=torch.zeros(1, 1, 1, 2048))[0] == "sdpa"
    # wide heads over short sequences on the CPU: the matmul backend (float32 / float64 only)
    wide = torch.randn(2, 1, 64, 4096)
    assert choose_backend(wide, wide, None)[0] == "matmul"
    assert choose_backend(wide.double(), wide.double(), CausalMask(), dropout=0.1)[0] == "matmul"
    assert choose_backend(wide.bfloat16(), wide.bfloat16(), None)[0] == "sdpa"
    assert choose_backend(wide[..., :128], wide[..., :128], None)[0] == "sdpa"  # head narrower than 256
    square = torch.randn(1, 1, 1024, 1024)
    assert choose_backend(square, square, None)[0] == "sdpa"  # longer than 512
    q256, k300 = torch.randn(2, 1, 64, 256), torch.randn(2, 1, 300, 256)
    assert choose_backend(q256, q256, None)[0] == "matmul"
    assert choose_backend(q256, k300, None)[0] == "sdpa"  # head narrower than Lk


def test_bad_bias_is_explained() -> None:
    q = torch.randn(1, 2, 5, 4)
    with pytest.raises(TypeError, match="float tensor"):
        attention(q, q, q, bias=torch.ones(1, 2, 5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="does not broadcast"):
        attention(q, q, q, bias=torch.zeros(1, 3, 5, 5))
    with pytest.raises(ValueError, match="4 dims"):
        attention(q, q, q, bias=torch.zeros(5, 5))


def test_bad_inputs_are_explained() -> None:
    q = torch.randn(1, 2, 5, 4)
    with pytest.raises(ValueError, match=r"\(B, H, L, D\)"):
        attention(q[0], q[0], q[0])
    with pytest.raises(ValueError, match="unknown attention backend"):
        attention(q, q, q, backend="xformers")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch size"):
        attention(q, q, q, KeyPaddingMask(torch.tensor([1, 2, 3])))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20))
def test_random_sweep_float64(seed: int) -> None:
    g = torch.Generator().manual_seed(1000 + seed)
    b, h = int(torch.randint(1, 4, (1,), generator=g)), int(torch.randint(1, 4, (1,), generator=g))
    lq, lk = int(torch.randint(1, 150, (1,), generator=g)), int(torch.randint(1, 150, (1,), generator=g))
    d, dv = int(torch.randint(1, 17, (1,), generator=g)), int(torch.randint(1, 17, (1,), generator=g))
    shape = (b, h, lq, lk, d, dv)
    for name, mask in _mask_cases(b, lq, lk).items():
        ref = _run("math", shape, mask, torch.float64)
        for backend in ("sdpa", "flex", "matmul"):
            with flex.eager_mode():
                got = _run(backend, shape, mask, torch.float64)
            try:
                _check_close(got, ref, F64)
            except AssertionError as e:  # pragma: no cover - diagnostic
                raise AssertionError(f"{backend} {name} {shape}: {e}") from e


@pytest.mark.slow
@pytest.mark.parametrize("mask_name", ["window", "document", "bool", "diagonal&causal"])
def test_compiled_flex_more_masks(mask_name: str) -> None:
    shape = (2, 2, 130, 130, 8, 8)
    mask = _mask_cases(2, 130, 130)[mask_name]
    ref = _run("math", shape, mask, torch.float64)
    got = _run("flex", shape, mask, torch.float32)
    _check_close(got, ref, F32)


def test_chunked_block_mask_equals_torch_reference() -> None:
    """Our row-chunked, uncompiled BlockMask equals torch's create_block_mask over several chunks."""
    from torch.nn.attention.flex_attention import create_block_mask

    lq, lk = flex._ROW_CHUNK + 300, 1500
    lengths = torch.tensor([1400, 0])
    for mask in (SlidingWindowMask(200), KeyPaddingMask(lengths) & CausalMask()):
        b = None if mask.batch_independent else 2
        ours = flex._build_block_mask(mask, b, lq, lk, torch.device("cpu"))
        ref = create_block_mask(mask.mask_mod(), b, None, lq, lk, device="cpu", _compile=False)
        for name in ("kv_num_blocks", "full_kv_num_blocks", "q_num_blocks", "full_q_num_blocks"):
            torch.testing.assert_close(getattr(ours, name), getattr(ref, name), msg=name)
        # indices agree on the used prefix of each row
        n = ours.kv_num_blocks
        for idx in torch.nonzero(n > 0)[:50]:
            i = tuple(idx.tolist())
            torch.testing.assert_close(ours.kv_indices[i][: n[i]], ref.kv_indices[i][: n[i]])


def test_block_masks_are_cached_by_pattern() -> None:
    flex.clear_cache()
    a = flex.block_mask_for(SlidingWindowMask(4), 2, 1, 256, 256, torch.device("cpu"))
    b = flex.block_mask_for(SlidingWindowMask(4), 3, 1, 256, 256, torch.device("cpu"))
    assert a is b  # batch-independent pattern: shared across batch sizes
    c = flex.block_mask_for(SlidingWindowMask(5), 2, 1, 256, 256, torch.device("cpu"))
    assert c is not a


def test_flex_failure_raises_by_name_and_auto_uses_sdpa(monkeypatch: pytest.MonkeyPatch) -> None:
    from attnkit.core.attention import functional

    def broken(*args: object, **kwargs: object) -> torch.Tensor:
        raise RuntimeError("inductor codegen failed (simulated)")

    monkeypatch.setattr(flex, "flex_attention_call", broken)
    monkeypatch.setattr(functional, "_flex_failed", set())
    monkeypatch.setattr(flex, "unavailable_reason", lambda q: None)
    q = torch.randn(1, 1, functional.FLEX_MIN_LENGTH, 4)
    mask = DocumentMask(torch.arange(functional.FLEX_MIN_LENGTH) // 64)
    with pytest.raises(BackendUnavailableError, match="simulated"):
        attention(q, q, q, mask, backend="flex")
    with record_backends() as used:
        out = attention(q, q, q, mask)
    assert used == ["sdpa"]
    torch.testing.assert_close(out, attention(q, q, q, mask, backend="math"))
    assert choose_backend(q, q, mask)[0] == "sdpa"  # remembered: no retry for these shapes


def test_compiled_flex_gets_distinct_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inductor's CPU flex lowering rejects q, k, v that are one buffer; attnkit passes copies."""
    seen: list[tuple[torch.Tensor, ...]] = []

    def fake(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kw: object) -> torch.Tensor:
        seen.append((q, k, v))
        return torch.zeros_like(q)

    monkeypatch.setattr(flex, "_compiled", lambda: fake)
    monkeypatch.setattr(flex, "unavailable_reason", lambda q: None)
    monkeypatch.setenv("ATTNKIT_FLEX_EAGER", "0")
    x = torch.randn(1, 1, 128, 4)
    attention(x, x, x, SlidingWindowMask(4), backend="flex")
    q, k, v = seen[0]
    assert len({q.data_ptr(), k.data_ptr(), v.data_ptr()}) == 3
    torch.testing.assert_close(k, x)
    torch.testing.assert_close(v, x)


@pytest.mark.parametrize("mask_name", ["none", "padding_bool", "document", "bool", "padding&causal"])
def test_bucketed_mask_pads_consistently(mask_name: str) -> None:
    """Compiled flex pads lengths to multiples of 128; the padded mask's mask_mod and dense() agree."""
    from torch.nn.attention.flex_attention import create_mask

    lq, lk = 100, 150
    inner = _mask_cases(2, lq, lk)[mask_name]
    m = flex._Bucketed(inner, lq, lk)
    dense = m.dense(128, 256).expand(2, 1, 128, 256)
    via_mod = create_mask(m.mask_mod(), 2, 1, 128, 256, device="cpu")
    assert torch.equal(dense, via_mod)
    assert not dense[..., lk:].any()
    ref = torch.ones(2, 1, lq, lk, dtype=torch.bool) if inner is None else inner.dense(lq, lk).expand(2, 1, lq, lk)
    assert torch.equal(dense[..., :lq, :lk], ref)


@pytest.mark.parametrize("backend", ["sdpa", "flex"])
def test_per_head_bool_mask_float64(backend: str) -> None:
    """A bool mask with a head axis: each head keeps its own pattern (BlockMask built per head)."""
    shape = (2, 3, 140, 140, 4, 4)  # > one 128-block so that block skipping matters
    g = torch.Generator().manual_seed(5)
    t = torch.rand(2, 3, 140, 140, generator=g) > 0.5
    t[:, 0] = True  # head 0 has full blocks; a BlockMask shared across heads would skip masking elsewhere
    t[:, 1, :, :128] = False  # head 1 cannot see the first key block at all
    t[0, 2, 5] = False  # one fully masked row in head 2
    mask = BoolMask(t) & CausalMask()
    ref = _run("math", shape, mask, torch.float64)
    with flex.eager_mode():
        got = _run(backend, shape, mask, torch.float64)
    _check_close(got, ref, F64)


def test_matmul_backend_keeps_huge_scores_accurate_and_the_value_layout() -> None:
    """Unscaled scores in the thousands (DANet's energies): most exact weights are far below float32's
    smallest normal number. The matmul backend's floor on them must not move the float32 result beyond
    the rounding of the plain float32 formula; masked keys stay exactly excluded; an output whose tokens are
    innermost in v keeps that layout."""
    g = torch.Generator().manual_seed(4)
    base = torch.relu(torch.randn(2, 1, 1024, 16, generator=g, dtype=torch.float64)) * 3
    x = base.transpose(-2, -1)  # (B, 1, 16 tokens, 1024 features), tokens innermost: stride 1 along L
    assert x.stride(-2) == 1
    lengths = torch.tensor([16, 11])
    mask = KeyPaddingMask(lengths)
    s = -(x @ x.transpose(-2, -1))
    assert (s.amax(-1) - s.amin(-1)).min() > 1000
    allowed = mask.dense(16, 16).expand(2, 1, 16, 16)
    want = torch.softmax(s.masked_fill(~allowed, -math.inf), -1) @ x
    xf = x.float()
    with record_backends() as used:
        got = attention(xf, xf, xf, mask, scale=-1.0)
    assert used == ["matmul"]
    assert got.stride(-2) == 1  # v's layout
    sf = -(xf @ xf.transpose(-2, -1))
    plain = torch.softmax(sf.masked_fill(~allowed, -math.inf), -1) @ xf
    err_plain = (plain.double() - want).abs().max().item()
    assert 0 < err_plain < 1e-2
    assert (got.double() - want).abs().max().item() <= 1.5 * err_plain
    # the masked keys get no weight at all: changing them changes nothing
    x2 = xf.clone()
    x2[1, :, 11:] = 100.0
    with torch.no_grad():
        out1 = attention(xf, xf, xf, mask, scale=-1.0)[1, :, :11]
        out2 = attention(x2, x2, x2, mask, scale=-1.0)[1, :, :11]
    torch.testing.assert_close(out1, out2, rtol=0, atol=0)
