"""The one functional entry point: :func:`attention`.

Backends:

* ``"math"`` -- the reference (matmul, softmax, matmul); the only backend that returns weights.
* ``"sdpa"`` -- :func:`torch.nn.functional.scaled_dot_product_attention` (flash / memory-efficient /
  cuDNN kernels on CUDA, the fused kernel on CPU).
* ``"flex"`` -- FlexAttention with a cached BlockMask, for structured sparsity (see :mod:`.flex`).
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

Backend = Literal["auto", "math", "sdpa", "flex"]
_BACKENDS = ("auto", "math", "sdpa", "flex")

#: Below this key length "auto" never picks FlexAttention: dense SDPA is faster for short sequences.
FLEX_MIN_LENGTH = 1024

_recorders: list[list[str]] = []


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
    q: Tensor, k: Tensor, mask: Mask | None, *, return_weights: bool = False, dropout: float = 0.0
) -> tuple[str, str]:
    """The backend ``"auto"`` runs for these inputs, and why."""
    if return_weights:
        return "math", "attention weights requested: only the math backend returns them"
    if q.dtype == torch.float64 and not q.is_cuda:
        # SDPA's fused CPU kernel handles float64 too, but the math path is the documented reference.
        return "sdpa", "float64 on CPU"
    lk = k.shape[-2]
    if (
        mask is not None
        and mask.structured_sparse
        and dropout == 0.0
        and lk >= FLEX_MIN_LENGTH
        and not mask.is_causal(q.shape[-2], lk)
    ):
        from attnkit.core.attention import flex

        if flex.is_available(q):
            return "flex", f"structured sparse mask {mask!r} at Lk={lk}"
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


def _math(q: Tensor, k: Tensor, v: Tensor, mask: Mask | None, dropout: float, scale: float) -> tuple[Tensor, Tensor]:
    lq, lk = q.shape[-2], k.shape[-2]
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
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


def _sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Mask | None, dropout: float, scale: float) -> Tensor:
    lq, lk = q.shape[-2], k.shape[-2]
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scale)
    if mask.is_causal(lq, lk):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=scale)
    dense = mask.dense(lq, lk, q.device)
    valid = _row_valid(dense)
    if bool(valid.all()):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=dense, dropout_p=dropout, scale=scale)
    # Fully masked rows: let them attend everywhere (finite forward and backward), then zero them.
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=dense | ~valid, dropout_p=dropout, scale=scale)
    return out * valid.to(out.dtype)


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
        backend: ``"auto"``, ``"math"``, ``"sdpa"`` or ``"flex"``.
        return_weights: also return the attention weights ``(B, H, Lq, Lk)`` (runs ``"math"``).

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

    if backend == "auto":
        chosen, why = choose_backend(q, k, m, return_weights=return_weights, dropout=dropout)
    else:
        chosen, why = backend, "requested"
        if return_weights and backend != "math":
            raise BackendUnavailableError(
                f"backend {backend!r} cannot return attention weights; use backend='math' or 'auto'"
            )

    if chosen == "math":
        _note("math", why)
        out, w = _math(q, k, v, m, dropout, s)
        return (out, w) if return_weights else out
    if chosen == "sdpa":
        _note("sdpa", why)
        return _sdpa(q, k, v, m, dropout, s)
    from attnkit.core.attention import flex

    if dropout > 0:
        raise BackendUnavailableError("backend 'flex' does not support attention dropout; use 'sdpa' or 'math'")
    if not flex.is_available(q):
        raise BackendUnavailableError(f"backend 'flex' is unavailable here: {flex.unavailable_reason(q)}")
    _note("flex", why)
    return flex.flex_attention_call(q, k, v, m, s)
