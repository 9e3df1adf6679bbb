"""Blocked local attention for sliding windows: memory and time linear in ``L``.

A :class:`~attnkit.core.attention.masks.SlidingWindowMask` of window ``w`` lets query ``i`` see keys
``|i - j| < w`` (or ``i - w < j <= i`` when causal). Cut the sequence into blocks of ``bs >= w`` positions:
every query of block ``n`` then only reaches keys in blocks ``n - 1``, ``n`` and ``n + 1`` (causal: ``n - 1``
and ``n``). We gather those key blocks next to each query block and run
:func:`torch.nn.functional.scaled_dot_product_attention` once on ``(B*H, N, bs, D)`` queries against
``(B*H, N, nk*bs, D)`` keys, with a boolean mask ``(N, bs, nk*bs)`` that is the same window pattern for
every block except where it reaches past either end of the sequence. Work and memory are
``O(L * nk * bs)`` instead of ``O(L^2)``; the backward is SDPA's own (exact, through autograd).

Supported masks: one ``SlidingWindowMask``, optionally ``&``-combined with any number of
:class:`~attnkit.core.attention.masks.KeyPaddingMask` (lengths or flags); self-attention shapes
(``Lq == Lk``); no additive bias. :func:`unsupported_reason` says why anything else cannot run here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from attnkit.core.attention.masks import AndMask, KeyPaddingMask, Mask, SlidingWindowMask

__all__ = ["LOCAL_MIN_BLOCK", "LocalPlan", "local_attention", "plan", "unsupported_reason"]

#: Smallest block: below ~16 positions per block the per-block overhead of SDPA dominates (measured at
#: L = 8192: window 8 runs as fast with blocks of 16 as with 8, and 1.1x slower with 32).
LOCAL_MIN_BLOCK = 16


@dataclass(frozen=True)
class LocalPlan:
    """What the local path needs from a mask: the window and the key-padding masks ``&``-ed with it."""

    window: int
    causal: bool
    padding: tuple[KeyPaddingMask, ...]


def _flatten(mask: Mask) -> list[Mask] | None:
    """Leaves of a tree of ``&`` (``AndMask``); ``None`` if any node is something else with children."""
    if isinstance(mask, AndMask):
        left, right = _flatten(mask.left), _flatten(mask.right)
        return None if left is None or right is None else left + right
    return [mask]


def plan(mask: Mask | None) -> LocalPlan | None:
    """Return the :class:`LocalPlan` of ``mask``, or ``None`` if the local path cannot express it."""
    if mask is None:
        return None
    leaves = _flatten(mask)
    if leaves is None:
        return None
    windows = [m for m in leaves if isinstance(m, SlidingWindowMask)]
    padding = tuple(m for m in leaves if isinstance(m, KeyPaddingMask))
    if len(windows) != 1 or len(windows) + len(padding) != len(leaves):
        return None
    return LocalPlan(windows[0].window, windows[0].causal, padding)


def unsupported_reason(q: Tensor, k: Tensor, mask: Mask | None, bias: Tensor | None) -> str | None:
    """Why ``backend="local"`` cannot run these inputs, or ``None`` when it can."""
    if plan(mask) is None:
        return (f"it needs a SlidingWindowMask, alone or & KeyPaddingMask; got {mask!r} -- use backend='sdpa' "
                "or 'flex'")
    if q.shape[-2] != k.shape[-2]:
        return (f"it needs Lq == Lk (self-attention), got Lq={q.shape[-2]}, Lk={k.shape[-2]} -- use "
                "backend='sdpa' or 'flex'")
    if bias is not None:
        return "it does not take an additive bias -- use backend='sdpa' or 'flex'"
    return None


def block_size(window: int, length: int) -> int:
    """Block size for a window: ``max(min(window, length), LOCAL_MIN_BLOCK)``.

    A window ``>= length`` is the same mask as a window of ``length`` (every ``|i - j| <= length - 1``).
    """
    return max(min(window, length), LOCAL_MIN_BLOCK)


def _blocks(x: Tensor, n: int, bs: int, nk: int) -> Tensor:
    """Key blocks each query block reaches: ``(..., L, E) -> (..., n, nk*bs, E)``.

    ``x`` is padded with one block of zeros in front (block ``-1``) and up to block ``n + nk - 2`` at the
    end, then the ``nk`` shifted views ``n - 1 + i`` (``i < nk``) are concatenated along the key axis.
    """
    length = x.shape[-2]
    xp = F.pad(x, (0, 0, bs, (n + nk - 2) * bs - length))
    xb = xp.unflatten(-2, (n + nk - 1, bs))
    return torch.cat([xb[..., i:i + n, :, :] for i in range(nk)], dim=-2)


def local_attention(
    q: Tensor, k: Tensor, v: Tensor, local: LocalPlan, dropout: float, scale: float
) -> Tensor:
    """Sliding-window attention over ``(B, H, L, D)`` tensors, blocked (see the module docstring).

    Args:
        q: queries ``(B, H, L, D)``.
        k: keys ``(B, H, L, D)``.
        v: values ``(B, H, L, Dv)``.
        local: the window and key padding, from :func:`plan`.
        dropout: dropout probability on the attention weights.
        scale: score scale.

    Returns:
        ``(B, H, L, Dv)``; query rows with no allowed key are zeros (as every backend returns them).

    """
    bsz, heads, length, d = q.shape
    dv = v.shape[-1]
    if length == 0:
        return q.new_zeros(bsz, heads, 0, dv)
    if d != dv and q.device.type == "cpu":
        # As in the sdpa backend: the fused CPU kernel needs one head size; zero columns are exact.
        if d < dv:
            q, k = F.pad(q, (0, dv - d)), F.pad(k, (0, dv - d))
        else:
            return local_attention(q, k, F.pad(v, (0, d - dv)), local, dropout, scale)[..., :dv]
        d = dv
    bs = block_size(local.window, length)
    w = min(local.window, length)
    n = -(-length // bs)
    nk = 2 if local.causal else 3
    dev = q.device

    # Window pattern of one block: query a (block n) vs key c (blocks n-1 .. n+nk-2): i - j = a - c + bs.
    diff = torch.arange(bs, device=dev).view(bs, 1) - torch.arange(nk * bs, device=dev).view(1, nk * bs) + bs
    pattern = ((diff >= 0) & (diff < w)) if local.causal else (diff.abs() < w)
    # Keys outside [0, L) (the zero padding at both ends) are never attended.
    key_pos = (torch.arange(n, device=dev).view(n, 1) - 1) * bs + torch.arange(nk * bs, device=dev)
    key_ok = (key_pos >= 0) & (key_pos < length)  # (n, nk*bs)
    if local.padding:
        valid = torch.ones(1, length, dtype=torch.bool, device=dev)
        for pm in local.padding:
            valid = valid & pm.dense(length, length, dev).view(-1, length)
        key_ok = key_ok & _blocks(valid.unsqueeze(-1), n, bs, nk).squeeze(-1)  # (B|1, n, nk*bs)
    allowed = pattern & key_ok.unsqueeze(-2)  # (B|1 or none, n, bs, nk*bs)
    # Rows that may attend to nothing (padded query rows past L, or every key in reach padded) attend
    # everywhere instead, so softmax stays finite forward and backward; their output is zeroed below.
    row_ok = allowed.any(-1, keepdim=True)
    query_pos = torch.arange(n * bs, device=dev).view(n, bs, 1)
    keep_row = row_ok | (query_pos >= length)  # rows zeroed below: real rows with no key (padded ones are cropped)
    needs_zero = not bool(keep_row.all())
    allowed = allowed | ~row_ok

    qb = F.pad(q, (0, 0, 0, n * bs - length)).unflatten(-2, (n, bs))  # (B, H, n, bs, D)
    kb, vb = _blocks(k, n, bs, nk), _blocks(v, n, bs, nk)  # (B, H, n, nk*bs, D|Dv)
    if allowed.dim() == 4 and allowed.shape[0] != 1:
        # Batch-dependent mask (key padding): put H next to the block axis so the mask broadcasts over
        # heads in SDPA's 4-D layout: (B*n, H, bs, D) with mask (B*n, 1, bs, nk*bs).
        def fold(x: Tensor) -> Tensor:
            return x.transpose(1, 2).reshape(bsz * n, heads, *x.shape[-2:])

        out = F.scaled_dot_product_attention(
            fold(qb), fold(kb), fold(vb), attn_mask=allowed.reshape(bsz * n, 1, bs, nk * bs),
            dropout_p=dropout, scale=scale,
        )
        out = out.view(bsz, n, heads, bs, dv).transpose(1, 2)
        row_mult = keep_row.reshape(bsz, 1, n, bs, 1)
    else:
        m = allowed.reshape(1, n, bs, nk * bs)
        out = F.scaled_dot_product_attention(
            qb.reshape(bsz * heads, n, bs, d), kb.reshape(bsz * heads, n, nk * bs, d),
            vb.reshape(bsz * heads, n, nk * bs, dv), attn_mask=m, dropout_p=dropout, scale=scale,
        )
        out = out.view(bsz, heads, n, bs, dv)
        row_mult = keep_row.reshape(1, 1, n, bs, 1)
    if needs_zero:
        out = out * row_mult.to(out.dtype)
    return out.reshape(bsz, heads, n * bs, dv)[:, :, :length]
