"""The blocked sliding-window backend ("local") against the math reference, its memory growth and auto's choice."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from attnkit.core import (
    BackendUnavailableError,
    CausalMask,
    DocumentMask,
    KeyPaddingMask,
    Mask,
    SlidingWindowMask,
    attention,
    record_backends,
)
from attnkit.core.attention import choose_backend, functional, local

F64 = {"atol": 1e-10, "rtol": 1e-9}


def _inputs(b: int, h: int, length: int, d: int, dv: int, dtype: torch.dtype = torch.float64,
            seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, length, n, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
            for n in (d, d, dv)]


def _fwd_bwd(backend: str, qkv: list[torch.Tensor], mask: Mask, **kw: object
             ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    q, k, v = (t.detach().clone().requires_grad_() for t in qkv)
    with record_backends() as used:
        out = attention(q, k, v, mask, backend=backend, **kw)  # type: ignore[arg-type]
    assert used == [backend]
    assert isinstance(out, torch.Tensor)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(out.dtype)
    (out * w).sum().backward()
    return out.detach(), [t.grad for t in (q, k, v)]  # type: ignore[misc]


CASES = [  # (B, H, L, D, Dv, window): L a multiple of the window, not a multiple, window >= L, tiny windows
    (2, 3, 32, 8, 8, 8),
    (2, 3, 37, 5, 5, 8),
    (1, 2, 37, 4, 4, 37),
    (2, 2, 20, 4, 4, 64),
    (1, 1, 50, 3, 3, 1),
    (2, 2, 45, 6, 6, 2),
    (1, 2, 70, 8, 3, 16),  # D > Dv
    (2, 1, 40, 3, 7, 5),  # D < Dv
    (1, 1, 1, 4, 4, 3),  # L = 1
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("causal", [False, True], ids=["symmetric", "causal"])
def test_local_matches_math_float64(case: tuple[int, ...], causal: bool) -> None:
    b, h, length, d, dv, window = case
    qkv = _inputs(b, h, length, d, dv)
    mask = SlidingWindowMask(window, causal=causal)
    got, ref = _fwd_bwd("local", qkv, mask), _fwd_bwd("math", qkv, mask)
    torch.testing.assert_close(got[0], ref[0], **F64)
    for g, r in zip(got[1], ref[1], strict=True):
        torch.testing.assert_close(g, r, **F64)


def _padding_masks(b: int, length: int) -> dict[str, Mask]:
    g = torch.Generator().manual_seed(length)
    lengths = torch.randint(1, length + 1, (b,), generator=g)
    lengths[0] = 0  # an empty sequence: every row fully masked
    lengths[-1] = 3  # rows far past the last key see only padding within their window: zeros
    valid = torch.rand(b, length, generator=g) > 0.4
    return {
        "lengths": SlidingWindowMask(4) & KeyPaddingMask(lengths),
        "flags_causal": KeyPaddingMask(valid) & SlidingWindowMask(3, causal=True),
        "both_paddings": (KeyPaddingMask(lengths) & SlidingWindowMask(6)) & KeyPaddingMask(valid),
    }


@pytest.mark.parametrize("name", list(_padding_masks(3, 8)))
@pytest.mark.parametrize("length", [24, 29])
def test_local_with_key_padding_matches_math_float64(name: str, length: int) -> None:
    mask = _padding_masks(3, length)[name]
    qkv = _inputs(3, 2, length, 4, 4)
    got, ref = _fwd_bwd("local", qkv, mask), _fwd_bwd("math", qkv, mask)
    assert (ref[0] == 0).all(-1).any()  # the case has fully masked rows, and they must stay zeros
    torch.testing.assert_close(got[0], ref[0], **F64)
    for g, r in zip(got[1], ref[1], strict=True):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, r, **F64)


def test_local_batch_of_one_key_padding_float64() -> None:
    mask = SlidingWindowMask(5, causal=True) & KeyPaddingMask(torch.tensor([17]))
    qkv = _inputs(1, 3, 23, 4, 4)
    got, ref = _fwd_bwd("local", qkv, mask), _fwd_bwd("math", qkv, mask)
    torch.testing.assert_close(got[0], ref[0], **F64)
    for g, r in zip(got[1], ref[1], strict=True):
        torch.testing.assert_close(g, r, **F64)


@pytest.mark.parametrize("causal", [False, True])
def test_local_bfloat16_and_autocast_close_to_float64(causal: bool) -> None:
    """bf16 (inputs and autocast): within bf16 rounding of the float64 reference, like math in bf16."""
    mask = SlidingWindowMask(16, causal=causal)
    qkv = _inputs(2, 2, 100, 16, 16)
    ref = _fwd_bwd("math", qkv, mask)
    tol = {"atol": 4e-2, "rtol": 4e-2}
    bf = [t.detach().bfloat16() for t in qkv]
    got = _fwd_bwd("local", bf, mask)
    assert got[0].dtype == torch.bfloat16
    torch.testing.assert_close(got[0].double(), ref[0], **tol)
    for g, r in zip(got[1], ref[1], strict=True):
        torch.testing.assert_close(g.double(), r, **tol)
    f32 = [t.detach().float() for t in qkv]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _fwd_bwd("local", f32, mask)
    assert got[0].dtype == torch.bfloat16  # autocast did run SDPA in bf16
    torch.testing.assert_close(got[0].double(), ref[0], **tol)
    for g, r in zip(got[1], ref[1], strict=True):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g.double(), r, **tol)


def test_local_dropout_is_unbiased() -> None:
    """Dropout on the window's weights: outputs differ per call and average to the dropout-free output."""
    mask = SlidingWindowMask(4)
    q, k, v = (t.detach() for t in _inputs(1, 1, 24, 4, 4))
    ref = attention(q, k, v, mask, backend="math")
    torch.manual_seed(0)
    samples = torch.stack([attention(q, k, v, mask, backend="local", dropout=0.3) for _ in range(2000)])
    assert not torch.equal(samples[0], samples[1])
    assert torch.isfinite(samples).all()
    # Per-element standard error of the mean is < 0.02 here; without the 1/(1-p) rescale the mean would be
    # off by up to 0.39.
    torch.testing.assert_close(samples.mean(0), ref, atol=0.1, rtol=0)


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor (in elements) any aten op produces, forward and backward."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def _largest_intermediate(backend: str, length: int, mask: Mask) -> int:
    q, k, v = (t.detach().float().requires_grad_() for t in _inputs(1, 2, length, 8, 8))
    with _LargestTensor() as mode:
        attention(q, k, v, mask, backend=backend).sum().backward()  # type: ignore[arg-type]
    return mode.largest


@pytest.mark.parametrize("mask", [SlidingWindowMask(32), SlidingWindowMask(32, causal=True)
                                  & KeyPaddingMask(torch.tensor([700]))], ids=["window", "causal&padding"])
def test_local_memory_is_linear_in_length(mask: Mask) -> None:
    """The largest tensor of forward + backward doubles with L for local; quadruples for dense masked SDPA."""
    local_1, local_2 = _largest_intermediate("local", 512, mask), _largest_intermediate("local", 1024, mask)
    dense_1, dense_2 = _largest_intermediate("sdpa", 512, mask), _largest_intermediate("sdpa", 1024, mask)
    assert 1.8 <= local_2 / local_1 <= 2.2
    assert dense_2 / dense_1 >= 3.8  # the check sees the quadratic path
    assert local_2 * 4 <= dense_2


def test_local_by_name_explains_what_it_cannot_run() -> None:
    q = torch.randn(1, 2, 16, 4)
    with pytest.raises(BackendUnavailableError, match="SlidingWindowMask"):
        attention(q, q, q, CausalMask(), backend="local")
    with pytest.raises(BackendUnavailableError, match="SlidingWindowMask"):
        attention(q, q, q, SlidingWindowMask(2) | CausalMask(), backend="local")
    with pytest.raises(BackendUnavailableError, match="Lq == Lk"):
        attention(q, torch.randn(1, 2, 20, 4), torch.randn(1, 2, 20, 4), SlidingWindowMask(2), backend="local")
    with pytest.raises(BackendUnavailableError, match="bias"):
        attention(q, q, q, SlidingWindowMask(2), backend="local", bias=torch.zeros(1, 2, 16, 16))
    with pytest.raises(BackendUnavailableError, match="weights"):
        attention(q, q, q, SlidingWindowMask(2), backend="local", return_weights=True)


def test_auto_picks_local_only_past_the_crossover() -> None:
    def pick(length: int, mask: Mask, **kw: object) -> str:
        q = torch.randn(1, 1, length, 8)
        return choose_backend(q, q, mask, **kw)[0]  # type: ignore[arg-type]

    minimum = functional.LOCAL_MIN_LENGTH
    assert pick(2048, SlidingWindowMask(128)) == "local"
    assert pick(2048, SlidingWindowMask(128, causal=True) & KeyPaddingMask(torch.tensor([9]))) == "local"
    assert pick(2048, SlidingWindowMask(128), dropout=0.1) == "local"
    assert pick(minimum, SlidingWindowMask(4)) == "local"
    assert pick(minimum - 1, SlidingWindowMask(4)) == "sdpa"  # too short: dense SDPA is faster
    few = functional.LOCAL_MIN_BLOCKS * local.block_size(512, 4096)
    assert pick(few, SlidingWindowMask(512)) == "local"
    assert pick(few - 1, SlidingWindowMask(512)) != "local"  # too few blocks of the window
    assert pick(2048, SlidingWindowMask(128), bias=torch.zeros(1, 1, 2048, 2048)) == "sdpa"
    assert pick(2048, SlidingWindowMask(8) | DocumentMask(torch.arange(2048) // 64)) != "local"
    q, k = torch.randn(1, 1, 2048, 8), torch.randn(1, 1, 2049, 8)
    assert choose_backend(q, k, SlidingWindowMask(8))[0] != "local"
    x = torch.randn(1, 1, 2048, 8, dtype=torch.float64)
    assert choose_backend(x, x, SlidingWindowMask(8))[0] == "local"  # float64 runs too (SDPA's kernel)


def test_auto_runs_local_and_matches_math() -> None:
    mask = SlidingWindowMask(16, causal=True) & KeyPaddingMask(torch.tensor([300, 77]))
    q, k, v = (torch.randn(2, 2, 320, 8, dtype=torch.float64) for _ in range(3))
    with record_backends() as used:
        out = attention(q, k, v, mask)
    assert used == ["local"]
    torch.testing.assert_close(out, attention(q, k, v, mask, backend="math"), **F64)
