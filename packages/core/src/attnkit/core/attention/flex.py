"""FlexAttention backend: masks lowered to cached BlockMasks, one compiled kernel per shape bucket.

How it runs (torch 2.11):

* **BlockMasks are built without compiling.** ``create_block_mask(..., _compile=True)`` fails on CPU
  for some masks (inductor C++ codegen mixes ``VecMask<int>`` and ``VecMask<float>`` for
  ``KeyPaddingMask(lengths) & CausalMask()``). We evaluate the ``mask_mod`` eagerly in chunks of query
  rows (memory ``O(chunk * Lk)``, never the full ``Lq x Lk`` mask) and build the BlockMask from block
  counts. This takes milliseconds to about a second at ``L = 8192`` and is cached by mask pattern,
  batch, lengths and device (:func:`block_mask_for`).
* **Only ``flex_attention`` itself is compiled** (``torch.compile(..., dynamic=False)``): one compiled
  graph per (mask code, shape, dtype) bucket, cached by dynamo. On a 2-core CPU the first call of a new
  bucket costs about 10-25 s (see docs/core.md); later calls cost microseconds of overhead. We raise the
  dynamo recompile limit for this call and make hitting it an error, so a long-running job never slides
  silently into the slow eager path.
* **Backward on CPU.** torch's FlexAttention has no CPU backward (neither eager nor compiled). When a
  gradient is needed on CPU we run the forward through FlexAttention and compute the backward
  ourselves (:class:`_FlexCPUFunction`): an exact, chunked recomputation over query blocks that only
  visits the key range each block may attend to, so banded masks stay cheap.
* **dtypes.** Compiled FlexAttention on CPU supports float32, float16 and bfloat16; float64 raises
  :class:`~attnkit.core.attention.functional.BackendUnavailableError` unless the eager mode is on.
* **Eager mode** (``ATTNKIT_FLEX_EAGER=1`` or ``with flex.eager_mode():``) runs torch's reference
  implementation of FlexAttention (dense, any dtype) -- for debugging and float64 parity tests.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from attnkit.core.attention.masks import Mask

__all__ = [
    "block_mask_for",
    "clear_cache",
    "compile_log",
    "eager_mode",
    "flex_attention_call",
    "is_available",
    "unavailable_reason",
]

_BLOCK_CACHE: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_BLOCK_CACHE_SIZE = 64
_BLOCK = 128  # FlexAttention's default sparse block size
_ROW_CHUNK = 1024  # query rows evaluated at once when building a BlockMask
_BWD_CHUNK = 256  # query rows per step of the CPU backward
_COMPILED_DTYPES_CPU = (torch.float32, torch.float16, torch.bfloat16)
_RECOMPILE_LIMIT = 64

#: (description, seconds) of every first call of a new compiled bucket in this process.
_COMPILE_LOG: list[tuple[str, float]] = []
_SEEN_BUCKETS: set[tuple[Any, ...]] = set()
_eager_override: list[bool] = []


def _eager() -> bool:
    if _eager_override:
        return _eager_override[-1]
    return os.environ.get("ATTNKIT_FLEX_EAGER", "0") == "1"


@contextlib.contextmanager
def eager_mode(enabled: bool = True) -> Iterator[None]:
    """Run FlexAttention eagerly (torch's dense reference implementation) inside this block."""
    _eager_override.append(enabled)
    try:
        yield
    finally:
        _eager_override.pop()


def compile_log() -> list[tuple[str, float]]:
    """``(bucket, seconds)`` for each compiled bucket first run in this process (compile + first call)."""
    return list(_COMPILE_LOG)


def unavailable_reason(q: Tensor) -> str | None:
    """Why FlexAttention cannot run for ``q``, or ``None`` when it can."""
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except ImportError:  # pragma: no cover - torch too old
        return "torch.nn.attention.flex_attention is missing (needs torch >= 2.5)"
    if q.device.type not in ("cpu", "cuda"):
        return f"device {q.device.type} is not supported by FlexAttention"
    if q.device.type == "cpu" and not _eager():
        if shutil.which(os.environ.get("CXX", "g++")) is None:
            return ("compiling FlexAttention on CPU needs a C++ compiler (g++); set "
                    "ATTNKIT_FLEX_EAGER=1 to run eagerly")
        if q.dtype not in _COMPILED_DTYPES_CPU:
            return (
                f"compiled FlexAttention on CPU supports float32/float16/bfloat16, got {q.dtype}; use "
                "backend='sdpa' or 'math', or attnkit.core.attention.flex.eager_mode() for the dense "
                "reference"
            )
    return None


def is_available(q: Tensor) -> bool:
    """Whether FlexAttention can run for ``q``."""
    return unavailable_reason(q) is None


@functools.cache
def _compiled() -> Callable[..., Tensor]:
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)  # type: ignore[arg-type]  # overloaded return type


def clear_cache() -> None:
    """Forget cached BlockMasks."""
    _BLOCK_CACHE.clear()


def _dense_rows(mod: Callable[..., Tensor], b: int, q0: int, q1: int, lk: int,
                device: torch.device, h: int = 1) -> Tensor:
    """Evaluate ``mod`` for query rows ``[q0, q1)``: bool ``(b, h, q1 - q0, lk)``."""
    from torch.nn.attention.flex_attention import create_mask

    def shifted(bi: Tensor, h: Tensor, qi: Tensor, ki: Tensor) -> Tensor:
        return mod(bi, h, qi + q0, ki)

    return create_mask(shifted, b, h, q1 - q0, lk, device=device)


def _mask_heads(mask: Mask | None) -> int:
    """Number of distinct per-head patterns of ``mask`` (1 unless a bool tensor has a head axis)."""
    from attnkit.core.attention.masks import BoolMask, _Combined

    if isinstance(mask, BoolMask):
        return int(mask.tensor.shape[1])
    if isinstance(mask, _Combined):
        return max(_mask_heads(mask.left), _mask_heads(mask.right))
    if isinstance(mask, _Bucketed):
        return _mask_heads(mask.inner)
    return 1


def _build_block_mask(mask: Mask, b: int | None, lq: int, lk: int, device: torch.device) -> Any:
    """Build a BlockMask from eager, row-chunked evaluation of ``mask.mask_mod()``."""
    from torch.nn.attention.flex_attention import BlockMask

    mod = mask.mask_mod()
    nb = 1 if b is None else b
    nh = _mask_heads(mask)
    nk = -(-lk // _BLOCK)
    partial, full = [], []
    for q0 in range(0, lq, _ROW_CHUNK):
        q1 = min(lq, q0 + _ROW_CHUNK)
        d = _dense_rows(mod, nb, q0, q1, lk, device, nh)
        nq = -(-(q1 - q0) // _BLOCK)
        d = torch.nn.functional.pad(d, (0, nk * _BLOCK - lk, 0, nq * _BLOCK - (q1 - q0)))
        counts = d.view(nb, nh, nq, _BLOCK, nk, _BLOCK).sum(dim=(3, 5))
        full.append(counts == _BLOCK * _BLOCK)
        partial.append((counts > 0) & (counts < _BLOCK * _BLOCK))
    p, f = torch.cat(partial, dim=2), torch.cat(full, dim=2)

    def to_indices(flags: Tensor) -> tuple[Tensor, Tensor]:
        num = flags.sum(-1).to(torch.int32)
        idx = torch.argsort(flags.to(torch.int8), dim=-1, descending=True, stable=True).to(torch.int32)
        return num, idx

    kv_num, kv_idx = to_indices(p)
    full_num, full_idx = to_indices(f)
    return BlockMask.from_kv_blocks(
        kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=_BLOCK, mask_mod=mod, seq_lengths=(lq, lk)
    )


def block_mask_for(mask: Mask, batch: int, heads: int, lq: int, lk: int, device: torch.device) -> Any:
    """Return the BlockMask of ``mask`` for these sizes, cached by pattern, shape and device when possible.

    Masks whose pattern depends on tensors (key padding, document ids, bool tensors) have no cache key and
    are rebuilt per call (cheap: chunked, no compilation).
    """
    key = mask.cache_key()
    b = None if mask.batch_independent else batch
    full_key: tuple[Any, ...] | None = None
    if key is not None:
        full_key = (key, b, lq, lk, str(device))
        hit = _BLOCK_CACHE.get(full_key)
        if hit is not None:
            _BLOCK_CACHE.move_to_end(full_key)
            return hit
    bm = _build_block_mask(mask, b, lq, lk, device)
    if full_key is not None:
        _BLOCK_CACHE[full_key] = bm
        if len(_BLOCK_CACHE) > _BLOCK_CACHE_SIZE:
            _BLOCK_CACHE.popitem(last=False)
    return bm


def _bias_score_mod(bias: Tensor) -> Callable[..., Tensor]:
    sb, sh, sq, sk = (int(s != 1) for s in bias.shape)

    def add_bias(score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return score + bias[b * sb, h * sh, q_idx * sq, kv_idx * sk]

    return add_bias


def _code_key(mask: Mask | None) -> tuple[Any, ...]:
    if mask is None:
        return ()
    from attnkit.core.attention.masks import _Combined

    if isinstance(mask, _Combined):
        return (type(mask).__name__, _code_key(mask.left), _code_key(mask.right))
    if isinstance(mask, _Bucketed):
        return _code_key_bucketed(mask)
    return (type(mask).__name__,)


def _same(a: Tensor, b: Tensor) -> bool:
    return a is b or (a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride())


def _forward(q: Tensor, k: Tensor, v: Tensor, mask: Mask | None, bias: Tensor | None, scale: float) -> Tensor:
    from torch.nn.attention.flex_attention import flex_attention

    bsz, heads, lq, _ = q.shape
    lk = k.shape[-2]
    bm = None if mask is None else block_mask_for(mask, bsz, heads, lq, lk, q.device)
    score_mod = None if bias is None else _bias_score_mod(bias)
    if _eager():
        # torch's "eager" flex still traces through dynamo (seconds per new mask); its debug switch runs the
        # higher-order op directly. That switch disables torch's flex backward, which we never use (inputs
        # are detached; the CPU backward is ours).
        import torch.nn.attention.flex_attention as fa

        before = fa._FLEX_ATTENTION_DISABLE_COMPILE_DEBUG
        fa._FLEX_ATTENTION_DISABLE_COMPILE_DEBUG = True
        try:
            out = flex_attention(q, k, v, score_mod=score_mod, block_mask=bm, scale=scale)
        finally:
            fa._FLEX_ATTENTION_DISABLE_COMPILE_DEBUG = before
        assert isinstance(out, Tensor)
        return out
    # Inductor's CPU flex lowering rejects q, k, v that are the same buffer ("Unsupported for now if query,
    # key, value are the same buffer"), e.g. attention(x, x, x): give it distinct copies.
    if _same(k, q):
        k = k.clone()
    if _same(v, q) or _same(v, k):
        v = v.clone()
    bucket = (_code_key(mask), bias is not None and tuple(bias.shape), tuple(q.shape), lk, v.shape[-1],
              q.dtype, str(q.device))
    first = bucket not in _SEEN_BUCKETS
    t0 = time.perf_counter()
    with torch._dynamo.config.patch(recompile_limit=_RECOMPILE_LIMIT, fail_on_recompile_limit_hit=True):
        out = _compiled()(q, k, v, score_mod=score_mod, block_mask=bm, scale=scale)
    if first:
        _SEEN_BUCKETS.add(bucket)
        _COMPILE_LOG.append((repr(bucket), time.perf_counter() - t0))
    assert isinstance(out, Tensor)
    return out


def _reduce_to(grad: Tensor, shape: torch.Size) -> Tensor:
    dims = [i for i, (g, s) in enumerate(zip(grad.shape, shape, strict=True)) if s == 1 and g != 1]
    return grad.sum(dim=dims, keepdim=True) if dims else grad


class _FlexCPUFunction(torch.autograd.Function):
    """FlexAttention forward with an exact, chunked recomputing backward (torch has none on CPU)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, mask: Mask | None, scale: float
    ) -> Tensor:
        # torch's FlexAttention refuses CPU inputs that require grad, even under no_grad: detach.
        bd = None if bias is None else bias.detach()
        out = _forward(q.detach(), k.detach(), v.detach(), mask, bd, scale)
        ctx.save_for_backward(q, k, v, out, bias)
        ctx.mask, ctx.scale = mask, scale
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dout: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        q, k, v, out, bias = ctx.saved_tensors
        mask: Mask | None = ctx.mask
        scale: float = ctx.scale
        lq, lk = q.shape[-2], k.shape[-2]
        # The mask is evaluated per chunk of query rows (never the full Lq x Lk: position masks build
        # int64 intermediates of that size).
        mod = None if mask is None else mask.mask_mod()
        nb = 1 if mask is None or mask.batch_independent else q.shape[0]
        nh = _mask_heads(mask)
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        dbias = None if bias is None or not ctx.needs_input_grad[3] else torch.zeros_like(bias)
        delta = (dout * out).sum(-1, keepdim=True)
        for q0 in range(0, lq, _BWD_CHUNK):
            q1 = min(lq, q0 + _BWD_CHUNK)
            k0, k1 = 0, lk
            dm = None
            if mod is not None:
                dm = _dense_rows(mod, nb, q0, q1, lk, q.device, nh)
                cols = dm.reshape(-1, lk).any(0).nonzero()
                if cols.numel() == 0:
                    continue  # every row of this chunk is fully masked: output zeros, gradient zero
                k0, k1 = int(cols[0]), int(cols[-1]) + 1
                dm = dm[..., k0:k1]
            qc, kr, vr = q[..., q0:q1, :], k[..., k0:k1, :], v[..., k0:k1, :]
            s = torch.matmul(qc, kr.transpose(-2, -1)) * scale
            if bias is not None:
                bq = bias[..., q0:q1, :] if bias.shape[-2] != 1 else bias
                s = s + (bq[..., k0:k1] if bias.shape[-1] != 1 else bq)
            if dm is not None:
                s = s.masked_fill(~dm, float("-inf"))
            m = s.amax(-1, keepdim=True)
            m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
            p = torch.exp(s - m)
            denom = p.sum(-1, keepdim=True)
            p = p / torch.where(denom > 0, denom, torch.ones_like(denom))
            doc = dout[..., q0:q1, :]
            dv[..., k0:k1, :] += torch.matmul(p.transpose(-2, -1), doc)
            dp = torch.matmul(doc, vr.transpose(-2, -1))
            ds = p * (dp - delta[..., q0:q1, :])
            if dbias is not None:
                g = _reduce_to(ds, torch.Size((*dbias.shape[:2], q1 - q0 if dbias.shape[-2] != 1 else 1,
                                                k1 - k0 if dbias.shape[-1] != 1 else 1)))
                qs = slice(q0, q1) if dbias.shape[-2] != 1 else slice(None)
                ks = slice(k0, k1) if dbias.shape[-1] != 1 else slice(None)
                dbias[..., qs, ks] += g
            dq[..., q0:q1, :] = torch.matmul(ds, kr) * scale
            dk[..., k0:k1, :] += torch.matmul(ds.transpose(-2, -1), qc) * scale
        return dq, dk, dv, dbias, None, None


class _Bucketed(Mask):
    """``inner`` for lengths ``(lq, lk)`` inside a padded ``(Lq', Lk')`` problem; padding fully masked.

    Indices are clamped before ``inner`` sees them (its tensors have the real lengths), and the real
    lengths are captured as tensors so the compiled kernel does not specialise on them.
    """

    def __init__(self, inner: Mask | None, lq: int, lk: int) -> None:
        self.inner, self.lq, self.lk = inner, lq, lk
        self.batch_independent = inner is None or inner.batch_independent
        self._lq_last, self._lk = torch.tensor(lq - 1), torch.tensor(lk)

    def batch_size(self) -> int | None:
        return None if self.inner is None else self.inner.batch_size()

    def cache_key(self) -> tuple[Any, ...] | None:
        if self.inner is None:
            return ("bucket", None, self.lq, self.lk)
        key = self.inner.cache_key()
        return None if key is None else ("bucket", key, self.lq, self.lk)

    def dense(self, lq: int, lk: int, device: torch.device | str | None = None) -> Tensor:
        if self.inner is None:
            d = torch.ones(1, 1, self.lq, self.lk, dtype=torch.bool, device=device)
        else:
            d = self.inner.dense(self.lq, self.lk, device)
            d = d.expand(*d.shape[:2], self.lq, self.lk)
        return torch.nn.functional.pad(d, (0, lk - self.lk, 0, lq - self.lq))

    def mask_mod(self) -> Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]:
        inner = None if self.inner is None else self.inner.mask_mod()
        lq_last, lk = self._lq_last, self._lk

        def bucketed(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            inside = (kv_idx < lk) & (q_idx <= lq_last)  # padded keys and padded query rows masked
            if inner is None:
                return inside
            return inside & inner(b, h, torch.minimum(q_idx, lq_last), torch.minimum(kv_idx, lk - 1))

        return bucketed


def _code_key_bucketed(mask: _Bucketed) -> tuple[Any, ...]:
    return ("_Bucketed", _code_key(mask.inner))


def _round_up(n: int) -> int:
    return -(-n // _BLOCK) * _BLOCK


def flex_attention_call(
    q: Tensor, k: Tensor, v: Tensor, mask: Mask | None, scale: float, bias: Tensor | None = None
) -> Tensor:
    """Run FlexAttention (``mask`` as a BlockMask, ``bias`` as a score_mod); fully masked rows give zeros.

    Compiled runs pad ``Lq`` and ``Lk`` up to multiples of 128 (padded keys masked, padded queries
    cropped), so all lengths in one 128-wide bucket share one compiled kernel. On CPU, when any input
    needs a gradient, the backward is attnkit's chunked recomputation.
    """
    lq, lk = q.shape[-2], k.shape[-2]
    pq, pk = _round_up(lq), _round_up(lk)
    if not _eager() and (pq, pk) != (lq, lk):
        pad_q, pad_k = (0, 0, 0, pq - lq), (0, 0, 0, pk - lk)
        q, k, v = (torch.nn.functional.pad(q, pad_q), torch.nn.functional.pad(k, pad_k),
                   torch.nn.functional.pad(v, pad_k))
        if bias is not None:
            bias = torch.nn.functional.pad(
                bias, (0, pk - lk if bias.shape[-1] != 1 else 0, 0, pq - lq if bias.shape[-2] != 1 else 0)
            )
        out = _call(q, k, v, _Bucketed(mask, lq, lk), scale, bias)
        return out[..., :lq, :]
    return _call(q, k, v, mask, scale, bias)


def _call(q: Tensor, k: Tensor, v: Tensor, mask: Mask | None, scale: float, bias: Tensor | None) -> Tensor:
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (q, k, v, bias)
    )
    if needs_grad and q.device.type == "cpu":
        out = _FlexCPUFunction.apply(q, k, v, bias, mask, scale)
        assert isinstance(out, Tensor)
        return out
    return _forward(q, k, v, mask, bias, scale)
