"""The one functional entry point: :func:`attention`.

Backends:

* ``"math"`` -- the reference (matmul, softmax, matmul); the only backend that returns weights.
* ``"sdpa"`` -- :func:`torch.nn.functional.scaled_dot_product_attention` (flash / memory-efficient /
  cuDNN kernels on CUDA, the fused kernel on CPU).
* ``"flex"`` -- FlexAttention with a cached BlockMask, for structured sparsity (see :mod:`.flex`).
* ``"local"`` -- blocked sliding-window attention (see :mod:`.local`): SDPA on blocks of the window size,
  time and memory linear in ``L``; for a ``SlidingWindowMask`` (optionally ``& KeyPaddingMask``).
* ``"matmul"`` -- two batched matmuls around a softmax that keeps its weights out of the subnormal range
  (weights below ``eps * e^-14`` of a row's largest are raised to that floor: far below the dtype's rounding),
  the output in ``v``'s memory layout. For short sequences with wide heads (DANet's channel attention: 64
  channel "tokens" with a 4,096-position "head") the fused CPU kernels tile the wrong axis, and unscaled
  scores in the thousands underflow most weights, each subnormal costing an x86 microcode assist in their
  backward pass (up to 14x slower: the measurements at :data:`MATMUL_MIN_HEAD_DIM`).
* ``"auto"`` -- chosen per call from device, dtype, mask kind and whether weights are needed.

A backend requested by name that cannot run raises :class:`BackendUnavailableError`; nothing falls back
silently. :func:`record_backends` reports which backend each call used.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from attnkit.core.attention.masks import Mask, as_mask

__all__ = ["Backend", "BackendUnavailableError", "attention", "choose_backend", "record_backends"]

log = logging.getLogger("attnkit.core.attention")

Backend = Literal["auto", "math", "sdpa", "flex", "local", "matmul"]
_BACKENDS = ("auto", "math", "sdpa", "flex", "local", "matmul")

#: Below this key length "auto" never picks FlexAttention: dense SDPA is faster for short sequences.
FLEX_MIN_LENGTH = 1024
#: On CPU, "auto" picks the local backend for a sliding window when L >= LOCAL_MIN_LENGTH and L spans at
#: least LOCAL_MIN_BLOCKS blocks of the window size. Measured crossover against dense masked SDPA (1 thread,
#: H=4, D=64, fwd and fwd+bwd): local is 0.8x at 4 blocks of 64, 1.1x at 6 blocks of 64, 1.5-1.7x at 6
#: blocks of 128, 2.2-3.0x at 6 blocks of 512; for windows <= 32 it pays from L = 256 (1.1-1.7x), not
#: below (0.8-0.9x at L = 128). Not measured on CUDA, so "auto" does not pick it there.
LOCAL_MIN_LENGTH = 256
LOCAL_MIN_BLOCKS = 6
#: On CPU, "auto" picks the matmul backend for float32 / float64 when the head dimension is at least
#: MATMUL_MIN_HEAD_DIM and at least the key length, and both lengths are at most MATMUL_MAX_LENGTH. Measured
#: against the fused SDPA kernel (1 thread, B=4, H=2, float32; forward / forward + backward, >1 = matmul
#: faster): L=64 D=256 1.04x / 1.54x, L=64 D=4096 1.42x / 1.63x, L=256 D=256 1.13x / 1.15x, L=256 D=1024
#: 1.26x / 1.72x; with unscaled scores (scale=1, DANet's energies) L=64 D=1024 0.79x / 8.3x, L=256 D=1024
#: 0.85x / 13.9x. SDPA stays ahead for narrow heads (L=256 D=64 0.51x / 0.61x) and long sequences (L=1024
#: D=256 0.34x / 0.60x). Half precision keeps the fused kernel, which accumulates the scores in float32.
MATMUL_MIN_HEAD_DIM = 256
MATMUL_MAX_LENGTH = 512

_recorders: list[list[str]] = []
#: (q.shape, k.shape) for which "auto" picked flex and it failed; "auto" uses sdpa for them from then on.
_flex_failed: set[tuple[torch.Size, torch.Size]] = set()


class BackendUnavailableError(RuntimeError):
    """A backend asked for by name cannot run this call."""


@contextlib.contextmanager
def record_backends() -> Iterator[list[str]]:
    """Record the backend each :func:`attention` call runs on.

    Example:
        >>> with record_backends() as used:
        ...     _ = attention(q, k, v)
        >>> used
        ['sdpa']

    """
    used: list[str] = []
    _recorders.append(used)
    try:
        yield used
    finally:
        _recorders.remove(used)


def _note(backend: str, why: str) -> None:
    for rec in _recorders:
        rec.append(backend)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("attention backend=%s (%s)", backend, why)


def choose_backend(
    q: Tensor,
    k: Tensor,
    mask: Mask | None,
    *,
    return_weights: bool = False,
    dropout: float = 0.0,
    bias: Tensor | None = None,
) -> tuple[str, str]:
    """Return the backend ``"auto"`` runs for these inputs, and why.

    Rules, in order: weights requested -> ``math``; on CPU, a ``SlidingWindowMask`` (alone or ``&`` key
    padding), ``Lq == Lk``, no bias, ``L >= max(LOCAL_MIN_LENGTH, LOCAL_MIN_BLOCKS * window)`` -> ``local``
    (any dtype, dropout allowed); a structured sparse mask (sliding window, document, causal with
    ``Lq != Lk``, or an ``&`` with one of those) on keys of length >= :data:`FLEX_MIN_LENGTH`, no dropout,
    no bias, and FlexAttention available (compiled on CPU: float32/16/bf16) -> ``flex``; on CPU, float32 or
    float64, head dimension ``>= max(MATMUL_MIN_HEAD_DIM, Lk)`` and ``Lq, Lk <= MATMUL_MAX_LENGTH`` ->
    ``matmul`` (any mask, bias or dropout); everything else -> ``sdpa`` (a pure causal mask lowered to
    ``is_causal``).
    """
    if return_weights:
        return "math", "attention weights requested: only the math backend returns them"
    lk = k.shape[-2]
    if (mask is not None and bias is None and q.device.type == "cpu" and q.shape[-2] == lk
            and lk >= LOCAL_MIN_LENGTH):
        from attnkit.core.attention import local

        p = local.plan(mask)
        if p is not None and lk >= LOCAL_MIN_BLOCKS * local.block_size(p.window, lk):
            return "local", f"sliding window {p.window} at L={lk}: blocked local attention"
    if (
        mask is not None
        and mask.structured_sparse
        and dropout == 0.0
        and bias is None
        and lk >= FLEX_MIN_LENGTH
        and not mask.is_causal(q.shape[-2], lk)
        and (q.shape, k.shape) not in _flex_failed
    ):
        from attnkit.core.attention import flex

        if flex.is_available(q):
            return "flex", f"structured sparse mask {mask!r} at Lk={lk}"
    if (q.device.type == "cpu" and q.dtype in (torch.float32, torch.float64)
            and q.shape[-1] >= max(MATMUL_MIN_HEAD_DIM, lk) and max(q.shape[-2], lk) <= MATMUL_MAX_LENGTH):
        return "matmul", f"head dimension {q.shape[-1]} over {q.shape[-2]} x {lk} positions on CPU"
    if q.dtype == torch.float64 and not q.is_cuda:
        return "sdpa", "float64 on CPU"
    if bias is not None:
        return "sdpa", "additive bias as a float attn_mask"
    if mask is None:
        return "sdpa", "no mask"
    if mask.is_causal(q.shape[-2], lk):
        return "sdpa", "causal mask lowered to is_causal"
    return "sdpa", "dense boolean mask"


def _check(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            "attention expects (B, H, L, D) tensors; got q "
            f"{tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} -- reshape with "
            "x.view(B, L, H, D).transpose(1, 2)"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v need the same length, got {k.shape[-2]} and {v.shape[-2]}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k need the same head size, got {q.shape[-1]} and {k.shape[-1]}")
    if q.shape[0] != k.shape[0] or q.shape[1] != k.shape[1]:
        raise ValueError(f"q and k/v need the same (B, H), got {tuple(q.shape[:2])} and {tuple(k.shape[:2])}")


def _row_valid(dense: Tensor) -> Tensor:
    """(B|1, H|1, Lq, 1): whether each query row has at least one key it may attend to."""
    return dense.any(dim=-1, keepdim=True)


def _check_bias(bias: Tensor, q: Tensor, k: Tensor) -> None:
    if not bias.is_floating_point():
        raise TypeError(
            f"attention bias must be a float tensor added to the scores, got {bias.dtype}; for a boolean "
            "mask pass mask=... (True = attend)"
        )
    target = (q.shape[0], q.shape[1], q.shape[-2], k.shape[-2])
    if bias.dim() != 4 or any(b not in (1, t) for b, t in zip(bias.shape, target, strict=True)):
        raise ValueError(
            f"attention bias of shape {tuple(bias.shape)} does not broadcast to (B, H, Lq, Lk) = {target}; "
            "give it 4 dims, e.g. bias.view(1, H, Lq, Lk)"
        )


def _math(
    q: Tensor, k: Tensor, v: Tensor, mask: Mask | None, dropout: float, scale: float,
    bias: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    lq, lk = q.shape[-2], k.shape[-2]
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        dense = mask.dense(lq, lk, q.device)
        scores = scores.masked_fill(~dense, float("-inf"))
        valid = _row_valid(dense)
        # A fully masked row would be softmax(-inf...) = NaN; give it zeros instead, and keep the
        # backward pass finite by softmaxing an all-zero row there.
        scores = torch.where(valid, scores, torch.zeros((), dtype=scores.dtype, device=scores.device))
        weights = torch.softmax(scores, dim=-1) * valid
    else:
        weights = torch.softmax(scores, dim=-1)
    p = F.dropout(weights, p=dropout) if dropout > 0 else weights
    return torch.matmul(p, v), weights


def _matmul(
    q: Tensor, k: Tensor, v: Tensor, mask: Mask | None, dropout: float, scale: float,
    bias: Tensor | None = None,
) -> Tensor:
    """The math backend's function with subnormal-free weights and ``v``'s layout kept (see the module doc)."""
    lq, lk = q.shape[-2], k.shape[-2]
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    if bias is not None:
        scores = scores + bias
    dense = valid = None
    if mask is not None:
        dense = mask.dense(lq, lk, q.device)
        valid = _row_valid(dense)
        scores = scores.masked_fill(~dense, float("-inf"))
    top = scores.detach().amax(dim=-1, keepdim=True)  # the row maximum over allowed keys (softmax is shift-free)
    if valid is not None:
        top = torch.where(valid, top, torch.zeros((), dtype=top.dtype, device=top.device))
    floor = math.log(torch.finfo(scores.dtype).eps) - 14.0
    logits = (scores - top).clamp(min=floor)  # clamp's gradient is 0 below the floor: weights ~1e-13 of the max
    if dense is not None and valid is not None:
        logits = logits.masked_fill(~dense, float("-inf"))
        # fully masked rows: softmax of zeros (finite forward and backward), then zeroed
        logits = torch.where(valid, logits, torch.zeros((), dtype=logits.dtype, device=logits.device))
        weights = torch.softmax(logits, dim=-1) * valid
    else:
        weights = torch.softmax(logits, dim=-1)
    p = F.dropout(weights, p=dropout) if dropout > 0 else weights
    if v.stride(-2) == 1 and v.shape[-2] > 1 and v.shape[-1] > 1:
        # tokens innermost (a channels-last map's channels as tokens): (v^T p^T)^T writes that layout
        return torch.matmul(v.transpose(-2, -1), p.transpose(-2, -1)).transpose(-2, -1)
    return torch.matmul(p, v)


def _sdpa(
    q: Tensor, k: Tensor, v: Tensor, mask: Mask | None, dropout: float, scale: float,
    bias: Tensor | None = None,
) -> Tensor:
    if q.stride(-1) != 1 or k.stride(-1) != 1 or v.stride(-1) != 1:
        # The fused kernels need unit stride along the head dimension and otherwise fall back to the math
        # path silently (2.6x slower forward + backward on the CPU for DANet's channel attention over a
        # channels-last map, whose "tokens" are channels: stride C along the feature axis). One copy here is
        # far cheaper.
        q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    d, dv = q.shape[-1], v.shape[-1]
    if d != dv and q.device.type == "cpu":
        # PyTorch's fused CPU kernel needs one head size for q, k and v, and otherwise falls back to the
        # math path (the full Lq x Lk matrix, ~2x slower at L = 4096). Zero columns change no dot product
        # and no output column, and ``scale`` is already fixed, so padding the narrower side is exact.
        if d < dv:
            q, k = F.pad(q, (0, dv - d)), F.pad(k, (0, dv - d))
        else:
            return _sdpa(q, k, F.pad(v, (0, d - dv)), mask, dropout, scale, bias)[..., :dv]
    lq, lk = q.shape[-2], k.shape[-2]
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, scale=scale)
    if bias is None and mask.is_causal(lq, lk):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=scale)
    dense = mask.dense(lq, lk, q.device)
    valid = _row_valid(dense)
    all_valid = bool(valid.all())
    # Fully masked rows: let them attend everywhere (finite forward and backward), then zero them.
    allowed = dense if all_valid else dense | ~valid
    attn_mask: Tensor = allowed
    if bias is not None:
        attn_mask = bias.masked_fill(~allowed, float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout, scale=scale)
    return out if all_valid else out * valid.to(out.dtype)


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Mask | Tensor | None = None,
    *,
    dropout: float = 0.0,
    scale: float | None = None,
    backend: Backend = "auto",
    return_weights: bool = False,
    bias: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Scaled dot-product attention over ``(B, H, L, D)`` tensors.

    Args:
        q: queries ``(B, H, Lq, D)``.
        k: keys ``(B, H, Lk, D)``.
        v: values ``(B, H, Lk, Dv)``.
        mask: a :class:`~attnkit.core.attention.masks.Mask` or a bool tensor broadcastable to
            ``(B, H, Lq, Lk)`` with ``True`` = attend. Query rows with no allowed key return zeros.
        dropout: dropout probability on the attention weights (pass 0 at evaluation).
        scale: score scale; defaults to ``1 / sqrt(D)``.
        backend: ``"auto"``, ``"math"``, ``"sdpa"``, ``"flex"``, ``"local"`` or ``"matmul"``.
        return_weights: also return the attention weights ``(B, H, Lq, Lk)`` (runs ``"math"``).
        bias: additive float bias on the scaled scores, 4-D and broadcastable to ``(B, H, Lq, Lk)``
            (e.g. :class:`~attnkit.core.layers.RelativePositionBias`): ``softmax(q k^T * scale + bias)``.
            ``math`` and ``matmul`` add it, ``sdpa`` passes it as a float ``attn_mask`` (masked positions set
            to ``-inf``), ``flex`` reads it in a ``score_mod``. Gradients flow into it on every backend.

    Returns:
        The output ``(B, H, Lq, Dv)``, or ``(output, weights)`` when ``return_weights``.

    Raises:
        BackendUnavailableError: the requested backend cannot run these inputs.

    """
    if backend not in _BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {', '.join(_BACKENDS)}")
    _check(q, k, v)
    m = as_mask(mask)
    if m is not None:
        bs = m.batch_size()
        if bs is not None and bs != q.shape[0]:
            raise ValueError(f"mask is for batch size {bs} but q has batch size {q.shape[0]}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    s = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])

    if bias is not None:
        _check_bias(bias, q, k)

    if backend == "auto":
        chosen, why = choose_backend(q, k, m, return_weights=return_weights, dropout=dropout, bias=bias)
    else:
        chosen, why = backend, "requested"
        if return_weights and backend != "math":
            raise BackendUnavailableError(
                f"backend {backend!r} cannot return attention weights; use backend='math' or 'auto'"
            )

    if chosen == "math":
        _note("math", why)
        out, w = _math(q, k, v, m, dropout, s, bias)
        return (out, w) if return_weights else out
    if chosen == "sdpa":
        _note("sdpa", why)
        return _sdpa(q, k, v, m, dropout, s, bias)
    if chosen == "matmul":
        _note("matmul", why)
        return _matmul(q, k, v, m, dropout, s, bias)
    if chosen == "local":
        from attnkit.core.attention import local

        reason = local.unsupported_reason(q, k, m, bias)
        if reason is not None:
            raise BackendUnavailableError(f"backend 'local' cannot run this call: {reason}")
        plan = local.plan(m)
        assert plan is not None
        _note("local", why)
        return local.local_attention(q, k, v, plan, dropout, s)
    from attnkit.core.attention import flex

    if dropout > 0:
        raise BackendUnavailableError(
            "backend 'flex' does not support attention dropout; use 'sdpa' or 'math'"
        )
    reason = flex.unavailable_reason(q)
    if reason is not None:
        raise BackendUnavailableError(f"backend 'flex' is unavailable here: {reason}")
    try:
        out = flex.flex_attention_call(q, k, v, m, s, bias)
    except Exception as e:  # compilation problems surface here (inductor codegen, recompile limit)
        if backend == "flex":
            raise BackendUnavailableError(
                f"backend 'flex' failed for q {tuple(q.shape)} {q.dtype}, k {tuple(k.shape)}, mask {m!r}: "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} -- use backend='sdpa', or "
                "attnkit.core.attention.flex.eager_mode() to debug"
            ) from e
        _flex_failed.add((q.shape, k.shape))
        log.warning("attention: 'auto' picked flex but it failed (%s: %s); using sdpa for these shapes",
                    type(e).__name__, e)
        _note("sdpa", "flex failed for these shapes")
        return _sdpa(q, k, v, m, dropout, s, bias)
    _note("flex", why)
    return out
