"""Imputation of series of any length with a fixed-window model: windowing and stitching."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from attnkit.timeseries.models.saits import SAITS

__all__ = ["impute_series", "stitch", "to_array"]


def stitch(windows: np.ndarray, starts: np.ndarray, length: int, allow_gaps: bool = False) -> np.ndarray:
    """Average overlapping window estimates ``(N, L, F)`` starting at ``starts`` into one ``(length, F)``.

    Steps no window covers are an error, or NaN with ``allow_gaps``.
    """
    n, w, f = windows.shape
    total = np.zeros((length, f), dtype=np.float64)
    count = np.zeros((length, 1), dtype=np.float64)
    for k in range(n):
        st = int(starts[k])
        total[st : st + w] += windows[k]
        count[st : st + w] += 1
    if (count == 0).any() and not allow_gaps:
        raise ValueError("the windows do not cover every step of the series")
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def to_array(x: Any, num_features: int) -> tuple[np.ndarray, Any]:
    """Convert numpy / torch / pandas input to a float64 ``(N, T, F)`` array and remember how to convert back.

    Raises:
        ValueError: non-numeric columns, infinities, or a feature count other than ``num_features``.
        TypeError: an unsupported input type.
    """
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None  # type: ignore[assignment]
    if pd is not None and isinstance(x, pd.DataFrame):
        bad = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c]) or pd.api.types.is_bool_dtype(x[c])]
        if bad:
            raise ValueError(
                f"non-numeric columns {bad}: SAITS imputes numeric variables only; drop them or set them "
                "as the index (e.g. df.set_index('date'))"
            )
        arr = x.to_numpy(dtype=np.float64)
        kind: Any = ("pandas", x)
    elif isinstance(x, torch.Tensor):
        if not torch.is_floating_point(x):
            raise ValueError(f"expected a floating-point tensor with NaN for missing values, got {x.dtype}")
        arr = x.detach().cpu().double().numpy()
        kind = ("torch", x)
    elif isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"expected a numeric array with NaN for missing values, got dtype {x.dtype}")
        arr = x.astype(np.float64)
        kind = ("numpy", x)
    else:
        raise TypeError(f"impute() takes a numpy array, a torch tensor or a pandas DataFrame, got {type(x).__name__}")
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected (T, F) or (N, T, F) input, got shape {arr.shape}")
    if arr.shape[-1] != num_features:
        raise ValueError(
            f"the model was trained on {num_features} features but the input has {arr.shape[-1]}; pass the "
            "same columns in the same order as in training"
        )
    if np.isinf(arr).any():
        raise ValueError("input contains infinite values; replace them with NaN to have them imputed")
    return arr, (kind, squeeze)


def _back(arr: np.ndarray, how: Any) -> Any:
    (name, orig), squeeze = how
    out = arr[0] if squeeze else arr
    if name == "pandas":
        return orig.__class__(out, index=orig.index, columns=orig.columns)
    if name == "torch":
        return torch.as_tensor(out, dtype=orig.dtype, device=orig.device)
    return out.astype(orig.dtype if np.issubdtype(orig.dtype, np.floating) else np.float64)


@torch.no_grad()
def impute_series(model: SAITS, x: Any, *, standardised: bool = False, batch_size: int = 256,
                  stride: int | None = None) -> Any:
    """See :meth:`attnkit.timeseries.SAITS.impute`."""
    arr, how = to_array(x, model.num_features)
    length = model.num_steps
    stride = stride or max(1, length // 2)
    p = next(model.parameters())
    mean = model.feature_mean.double().cpu().numpy()
    std = model.feature_std.double().cpu().numpy()
    z = arr if standardised else (arr - mean) / std
    windows, where = [], []
    for i, s in enumerate(z):
        t = s.shape[0]
        if t < length:  # documented: pad with missing steps, impute, cut back
            s = np.concatenate([s, np.full((length - t, s.shape[1]), np.nan)])
        starts = list(range(0, s.shape[0] - length + 1, stride))
        if starts[-1] != s.shape[0] - length:
            starts.append(s.shape[0] - length)
        for st in starts:
            windows.append(s[st : st + length])
            where.append((i, st, s.shape[0]))
    w = np.stack(windows)
    was_training = model.training
    model.eval()
    est = np.empty_like(w)
    try:
        for b in range(0, len(w), batch_size):
            xb = torch.as_tensor(w[b : b + batch_size], dtype=p.dtype, device=p.device)
            mask = ~torch.isnan(xb)
            out = model(torch.nan_to_num(xb), mask.to(xb.dtype))
            est[b : b + batch_size] = out.x_tilde_3.double().cpu().numpy()
    finally:
        model.train(was_training)
    result = np.empty_like(z)
    where_a = np.asarray(where)
    for i in range(z.shape[0]):
        sel = where_a[:, 0] == i
        full = stitch(est[sel], where_a[sel, 1], int(where_a[sel, 2][0]))[: z.shape[1]]
        result[i] = np.where(np.isnan(z[i]), full, z[i])
    if not standardised:
        result = result * std + mean
        result = np.where(np.isnan(arr), result, arr)  # observed values bit-identical
    return _back(result, how)
