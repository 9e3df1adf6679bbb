"""FlexAttention backend: masks lowered to cached BlockMasks, compiled kernels per shape bucket.

FlexAttention needs ``torch.compile`` (inductor) to be fast and to avoid materialising the full score
matrix; on CPU inductor generates C++ and needs a working compiler. Compiled kernels are cached by
torch per shape; :func:`flex_attention_call` compiles once and reuses the compiled function. Set
``ATTNKIT_FLEX_EAGER=1`` to run the (slow, dense) eager implementation instead, e.g. for debugging.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from attnkit.core.attention.masks import Mask

__all__ = ["block_mask_for", "clear_cache", "flex_attention_call", "is_available", "unavailable_reason"]

_BLOCK_CACHE: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_BLOCK_CACHE_SIZE = 64


def unavailable_reason(q: Tensor) -> str | None:
    """Why FlexAttention cannot run for ``q``, or ``None`` when it can."""
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except ImportError:  # pragma: no cover - torch too old
        return "torch.nn.attention.flex_attention is missing (needs torch >= 2.5)"
    if q.device.type not in ("cpu", "cuda"):
        return f"device {q.device.type} is not supported by FlexAttention"
    if q.device.type == "cpu" and not _eager() and shutil.which(os.environ.get("CXX", "g++")) is None:
        return "compiling FlexAttention on CPU needs a C++ compiler (g++); set ATTNKIT_FLEX_EAGER=1 to run eagerly"
    return None


def is_available(q: Tensor) -> bool:
    """Whether FlexAttention can run for ``q``."""
    return unavailable_reason(q) is None


def _eager() -> bool:
    return os.environ.get("ATTNKIT_FLEX_EAGER", "0") == "1"


@functools.cache
def _compiled() -> Callable[..., Tensor]:
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def clear_cache() -> None:
    """Forget cached BlockMasks."""
    _BLOCK_CACHE.clear()


def block_mask_for(mask: Mask, batch: int, heads: int, lq: int, lk: int, device: torch.device) -> Any:
    """The BlockMask of ``mask`` for these sizes, cached by pattern, shape and device when possible."""
    from torch.nn.attention.flex_attention import create_block_mask

    key = mask.cache_key()
    b = None if mask.batch_independent else batch
    if key is not None:
        full = (key, b, lq, lk, str(device))
        hit = _BLOCK_CACHE.get(full)
        if hit is not None:
            _BLOCK_CACHE.move_to_end(full)
            return hit
    bm = create_block_mask(mask.mask_mod(), b, None, lq, lk, device=device, _compile=not _eager())
    if key is not None:
        _BLOCK_CACHE[full] = bm
        if len(_BLOCK_CACHE) > _BLOCK_CACHE_SIZE:
            _BLOCK_CACHE.popitem(last=False)
    return bm


def flex_attention_call(q: Tensor, k: Tensor, v: Tensor, mask: Mask | None, scale: float) -> Tensor:
    """Run FlexAttention; fully masked rows give zeros."""
    from torch.nn.attention.flex_attention import flex_attention

    bsz, heads, lq, _ = q.shape
    lk = k.shape[-2]
    bm = None if mask is None else block_mask_for(mask, bsz, heads, lq, lk, q.device)
    fn = flex_attention if _eager() else _compiled()
    out = fn(q, k, v, block_mask=bm, scale=scale)
    assert isinstance(out, Tensor)
    return out
