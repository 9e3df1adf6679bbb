"""Composable attention masks.

A mask says which (query, key) pairs may attend: ``True`` means *attend*. Masks combine with ``&`` and
``|`` and lower to what a backend needs:

* :meth:`Mask.is_causal` -- SDPA's ``is_causal`` flag (only a pure causal mask with ``Lq == Lk``);
* :meth:`Mask.dense` -- a boolean tensor broadcastable to ``(B, H, Lq, Lk)``;
* :meth:`Mask.mask_mod` -- a FlexAttention ``mask_mod(b, h, q_idx, kv_idx)``.

Positions are aligned top-left (query ``i`` and key ``i`` are the same time step), as in
:func:`torch.nn.functional.scaled_dot_product_attention` with ``is_causal=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

MaskMod = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]

__all__ = [
    "AndMask",
    "BoolMask",
    "CausalMask",
    "DiagonalMask",
    "DocumentMask",
    "KeyPaddingMask",
    "Mask",
    "OrMask",
    "SlidingWindowMask",
    "as_mask",
]


class Mask:
    """Base class of composable attention masks (``True`` = may attend)."""

    #: True when the mask only depends on positions (not on batch content), so a FlexAttention
    #: BlockMask can be shared across the batch dimension.
    batch_independent: bool = True
    #: True when the mask is sparse in a block-structured way that FlexAttention can skip.
    structured_sparse: bool = False

    def __and__(self, other: Mask | Tensor) -> Mask:
        return AndMask(self, _operand(other))

    def __rand__(self, other: Mask | Tensor) -> Mask:
        return AndMask(_operand(other), self)

    def __or__(self, other: Mask | Tensor) -> Mask:
        return OrMask(self, _operand(other))

    def __ror__(self, other: Mask | Tensor) -> Mask:
        return OrMask(_operand(other), self)

    def is_causal(self, lq: int, lk: int) -> bool:
        """Whether the mask is exactly SDPA's ``is_causal=True`` for these lengths."""
        return False

    def dense(self, lq: int, lk: int, device: torch.device | str | None = None) -> Tensor:
        """Return a boolean tensor broadcastable to ``(B, H, Lq, Lk)``; ``True`` = attend."""
        raise NotImplementedError

    def mask_mod(self) -> MaskMod:
        """Return a FlexAttention ``mask_mod(b, h, q_idx, kv_idx) -> bool``."""
        raise NotImplementedError

    def batch_size(self) -> int | None:
        """Batch size the mask is tied to, or ``None`` if it broadcasts over any batch."""
        return None

    def cache_key(self) -> tuple[Any, ...] | None:
        """Return a hashable key identifying the mask's pattern for BlockMask caching, or ``None``."""
        return None

    def _positions(self, lq: int, lk: int, device: torch.device | str | None) -> tuple[Tensor, Tensor]:
        q = torch.arange(lq, device=device).view(lq, 1)
        k = torch.arange(lk, device=device).view(1, lk)
        return q, k


class CausalMask(Mask):
    """Query ``i`` attends to keys ``j <= i`` (top-left aligned)."""

    structured_sparse = True

    def is_causal(self, lq: int, lk: int) -> bool:  # noqa: D102
        return lq == lk

    def dense(self, lq: int, lk: int, device: torch.device | str | None = None) -> Tensor:  # noqa: D102
        q, k = self._positions(lq, lk, device)
        return (k <= q).view(1, 1, lq, lk)

    def mask_mod(self) -> MaskMod:  # noqa: D102
        def causal(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return kv_idx <= q_idx

        return causal

    def cache_key(self) -> tuple[Any, ...]:  # noqa: D102
        return ("causal",)

    def __repr__(self) -> str:
        return "CausalMask()"


class DiagonalMask(Mask):
    """No position attends to itself (SAITS's diagonally-masked self-attention)."""

    def dense(self, lq: int, lk: int, device: torch.device | str | None = None) -> Tensor:  # noqa: D102
        q, k = self._positions(lq, lk, device)
        return (k != q).view(1, 1, lq, lk)

    def mask_mod(self) -> MaskMod:  # noqa: D102
        def diagonal(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return kv_idx != q_idx

        return diagonal

    def cache_key(self) -> tuple[Any, ...]:  # noqa: D102
        return ("diagonal",)

    def __repr__(self) -> str:
        return "DiagonalMask()"


class SlidingWindowMask(Mask):
    """Local attention within a window of ``window`` positions.

    Args:
        window: window size ``w >= 1``. Non-causal: query ``i`` sees keys with ``|i - j| < w``.
            Causal: query ``i`` sees keys ``i - w < j <= i`` (itself and the ``w - 1`` before it).
        causal: also forbid attending to the future.

    """

    structured_sparse = True

    def __init__(self, window: int, causal: bool = False) -> None:
        if int(window) < 1:
            raise ValueError(f"SlidingWindowMask window must be >= 1, got {window}")
        self.window = int(window)
        self.causal = bool(causal)

    def dense(self, lq: int, lk: int, device: torch.device | str | None = None) -> Tensor:  # noqa: D102
        q, k = self._positions(lq, lk, device)
        d = q - k
        m = (d < self.window) & (d >= 0) if self.causal else d.abs() < self.window
        return m.view(1, 1, lq, lk)

    def mask_mod(self) -> MaskMod:  # noqa: D102
        w, causal = self.window, self.causal

        def window_mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            d = q_idx - kv_idx
            if causal:
                return (d >= 0) & (d < w)
            return (d < w) & (d > -w)

        return window_mod

    def cache_key(self) -> tuple[Any, ...]:  # noqa: D102
        return ("window", self.window, self.causal)

    def __repr__(self) -> str:
        return f"SlidingWindowMask(window={self.window}, causal={self.causal})"


class KeyPaddingMask(Mask):
    """Masks padded keys.

    Args:
        valid: either lengths ``(B,)`` (keys ``j < length[b]`` are valid) or a boolean ``(B, Lk)``
            tensor with ``True`` for valid (non-padded) keys.

    """

    batch_independent = False

    def __init__(self, valid: Tensor) -> None:
        if valid.dim() == 1 and valid.dtype != torch.bool:
            if (valid < 0).any():
                raise ValueError("KeyPaddingMask lengths must be >= 0")
            self.lengths: Tensor | None = valid.long()
            self.valid: Tensor | None = None
        elif valid.dim() == 2 and valid.dtype == torch.bool:
            self.lengths = None
            self.valid = valid
        else:
            raise ValueError(
                "KeyPaddingMask takes lengths (B,) of integers or a bool tensor (B, Lk) with True for "
                f"valid keys; got dtype {valid.dtype} and shape {tuple(valid.shape)}"
            )

    @classmethod
    def from_padding(cls, padded: Tensor) -> KeyPaddingMask:
        """Build from a bool tensor ``(B, Lk)`` that is ``True`` at *padded* keys (PyTorch's convention)."""
        return cls(~padded.bool())

    def batch_size(self) -> int:  # noqa: D102
        t = self.lengths if self.lengths is not None else self.valid
        assert t is not None
        return int(t.shape[0])

    def dense(self, lq: int, lk: int, device: torch.device | str | None = None) -> Tensor:  # noqa: D102
        if self.valid is not None:
            if self.valid.shape[1] != lk:
                raise ValueError(f"KeyPaddingMask has {self.valid.shape[1]} keys but attention has Lk={lk}")
            v = self.valid.to(device)
        else:
            assert self.lengths is not None
            v = torch.arange(lk, device=device).view(1, lk) < self.lengths.to(device).view(-1, 1)
        return v.view(v.shape[0], 1, 1, lk)

    def mask_mod(self) -> MaskMod:  # noqa: D102
        if self.lengths is not None:
            lengths = self.lengths

            def by_length(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
                return kv_idx < lengths[b]

            return by_length
        valid = self.valid
        assert valid is not None

        def by_flag(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return valid[b, kv_idx]

        return by_flag

    def __repr__(self) -> str:
        return f"KeyPaddingMask(batch={self.batch_size()})"


class DocumentMask(Mask):
    """Packed sequences: a query attends only to keys of the same document.

    Args:
        query_ids: document id per query position ``(B, Lq)`` (or ``(Lq,)``).
        key_ids: document id per key position; defaults to ``query_ids`` (self-attention).

    """

    batch_independent = False
    structured_sparse = True

    def __init__(self, query_ids: Tensor, key_ids: Tensor | None = None) -> None:
        qi = query_ids if query_ids.dim() == 2 else query_ids.unsqueeze(0)
        ki = qi if key_ids is None else (key_ids if key_ids.dim() == 2 else key_ids.unsqueeze(0))
        self.query_ids, self.key_ids = qi.long(), ki.long()

    def batch_size(self) -> int | None:  # noqa: D102
        n = self.query_ids.shape[0]
        return None if n == 1 else int(n)

    def dense(self, lq: int, lk: int, device: torch.device | str | None = None) -> Tensor:  # noqa: D102
        if self.query_ids.shape[1] != lq or self.key_ids.shape[1] != lk:
            raise ValueError(
                f"DocumentMask ids have lengths ({self.query_ids.shape[1]}, {self.key_ids.shape[1]}) "
                f"but attention has Lq={lq}, Lk={lk}"
            )
        q, k = self.query_ids.to(device), self.key_ids.to(device)
        return (q.unsqueeze(-1) == k.unsqueeze(-2)).unsqueeze(1)

    def mask_mod(self) -> MaskMod:  # noqa: D102
        qi, ki = self.query_ids, self.key_ids
        shared = qi.shape[0] == 1

        def same_doc(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            bb = torch.zeros_like(b) if shared else b
            return qi[bb, q_idx] == ki[bb, kv_idx]

        return same_doc

    def __repr__(self) -> str:
        return f"DocumentMask(shape={tuple(self.query_ids.shape)})"


class BoolMask(Mask):
    """Any boolean tensor broadcastable to ``(B, H, Lq, Lk)``; ``True`` = attend.

    2-D ``(Lq, Lk)`` and 3-D ``(B, Lq, Lk)`` tensors are accepted and viewed as 4-D.
    """

    batch_independent = False

    def __init__(self, tensor: Tensor) -> None:
        if tensor.dtype != torch.bool:
            raise TypeError(
                f"BoolMask needs a bool tensor with True = attend, got {tensor.dtype}; for an additive "
                "float mask use `mask = (float_mask == 0)` or pass the bias to your own score function"
            )
        if tensor.dim() == 2:
            tensor = tensor.view(1, 1, *tensor.shape)
        elif tensor.dim() == 3:
            tensor = tensor.unsqueeze(1)
        elif tensor.dim() != 4:
            raise ValueError(f"BoolMask needs 2 to 4 dims (.., Lq, Lk), got shape {tuple(tensor.shape)}")
        self.tensor = tensor

    def batch_size(self) -> int | None:  # noqa: D102
        n = self.tensor.shape[0]
        return None if n == 1 else int(n)

    def dense(self, lq: int, lk: int, device: torch.device | str | None = None) -> Tensor:  # noqa: D102
        t = self.tensor
        if t.shape[-2] not in (1, lq) or t.shape[-1] not in (1, lk):
            raise ValueError(f"BoolMask of shape {tuple(t.shape)} does not broadcast to (.., {lq}, {lk})")
        return t.to(device)

    def mask_mod(self) -> MaskMod:  # noqa: D102
        t = self.tensor
        sb, sh, sq, sk = (int(s != 1) for s in t.shape)

        def lookup(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return t[b * sb, h * sh, q_idx * sq, kv_idx * sk]

        return lookup

    def __repr__(self) -> str:
        return f"BoolMask(shape={tuple(self.tensor.shape)})"


class _Combined(Mask):
    def __init__(self, left: Mask, right: Mask) -> None:
        self.left, self.right = left, right
        self.batch_independent = left.batch_independent and right.batch_independent
        b1, b2 = left.batch_size(), right.batch_size()
        if b1 is not None and b2 is not None and b1 != b2:
            raise ValueError(f"cannot combine masks for batch sizes {b1} and {b2}")

    def batch_size(self) -> int | None:
        return self.left.batch_size() or self.right.batch_size()

    def cache_key(self) -> tuple[Any, ...] | None:
        a, b = self.left.cache_key(), self.right.cache_key()
        if a is None or b is None:
            return None
        return (type(self).__name__, a, b)


class AndMask(_Combined):
    """Both masks allow the pair."""

    def __init__(self, left: Mask, right: Mask) -> None:
        super().__init__(left, right)
        self.structured_sparse = left.structured_sparse or right.structured_sparse

    def is_causal(self, lq: int, lk: int) -> bool:  # noqa: D102
        # causal & causal is causal; anything else needs a real mask.
        return self.left.is_causal(lq, lk) and self.right.is_causal(lq, lk)

    def dense(self, lq: int, lk: int, device: torch.device | str | None = None) -> Tensor:  # noqa: D102
        return self.left.dense(lq, lk, device) & self.right.dense(lq, lk, device)

    def mask_mod(self) -> MaskMod:  # noqa: D102
        a, b = self.left.mask_mod(), self.right.mask_mod()

        def both(bi: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return a(bi, h, q_idx, kv_idx) & b(bi, h, q_idx, kv_idx)

        return both

    def __repr__(self) -> str:
        return f"({self.left!r} & {self.right!r})"


class OrMask(_Combined):
    """Either mask allows the pair."""

    def __init__(self, left: Mask, right: Mask) -> None:
        super().__init__(left, right)
        self.structured_sparse = left.structured_sparse and right.structured_sparse

    def is_causal(self, lq: int, lk: int) -> bool:  # noqa: D102
        return self.left.is_causal(lq, lk) and self.right.is_causal(lq, lk)

    def dense(self, lq: int, lk: int, device: torch.device | str | None = None) -> Tensor:  # noqa: D102
        return self.left.dense(lq, lk, device) | self.right.dense(lq, lk, device)

    def mask_mod(self) -> MaskMod:  # noqa: D102
        a, b = self.left.mask_mod(), self.right.mask_mod()

        def either(bi: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return a(bi, h, q_idx, kv_idx) | b(bi, h, q_idx, kv_idx)

        return either

    def __repr__(self) -> str:
        return f"({self.left!r} | {self.right!r})"


def _operand(other: Mask | Tensor) -> Mask:
    """The other side of ``&`` / ``|``: a mask or a bool tensor (``None`` has no meaning there)."""
    mask = as_mask(other)
    if mask is None:
        raise TypeError("cannot combine a mask with None: leave the None side out (no mask = attend everywhere)")
    return mask


def as_mask(mask: Mask | Tensor | None) -> Mask | None:
    """Wrap a bool tensor as :class:`BoolMask`; pass masks and ``None`` through."""
    if mask is None or isinstance(mask, Mask):
        return mask
    if isinstance(mask, Tensor):
        return BoolMask(mask)
    raise TypeError(f"expected a Mask, a bool tensor or None, got {type(mask).__name__}")
