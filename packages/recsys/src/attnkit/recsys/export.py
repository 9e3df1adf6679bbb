"""Export a trained SASRec for serving: TorchScript (traced) or ONNX, scoring all items from a history."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from attnkit.core import MultiHeadAttention
from attnkit.recsys.models.sasrec import SASRec, SASRecScorer

__all__ = ["export_onnx", "export_torchscript"]


@contextlib.contextmanager
def _export_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and the ``math`` attention backend (no data-dependent branches) for tracing."""
    mhas = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    backends = [m.backend for m in mhas]
    was_training = model.training
    model.eval()
    for m in mhas:
        m.backend = "math"
    try:
        yield
    finally:
        for m, b in zip(mhas, backends, strict=True):
            m.backend = b
        model.train(was_training)


def _example(model: SASRec) -> torch.Tensor:
    seq = torch.zeros(2, model.max_len, dtype=torch.long, device=model.item_emb.weight.device)
    seq[0, -3:] = torch.tensor([1, 2, 3]).clamp(max=model.num_items)
    seq[1, :] = torch.arange(model.max_len).remainder(model.num_items) + 1
    return seq


def export_torchscript(model: SASRec, path: str | os.PathLike[str] | None = None) -> torch.jit.ScriptModule:
    """Trace ``SASRecScorer(model)``: ``seq (B, max_len)`` left-padded ids -> scores ``(B, N + 1)``.

    Inputs must be exactly ``max_len`` long (left-pad shorter histories with 0). Saved to ``path`` if given.
    """
    scorer = SASRecScorer(model)
    with _export_mode(model), torch.no_grad():
        traced = torch.jit.trace(scorer, (_example(model),), check_trace=False)
    if path is not None:
        traced.save(str(path))
    return traced


def export_onnx(model: SASRec, path: str | os.PathLike[str], opset: int = 17) -> Path:
    """Export ``SASRecScorer(model)`` to ONNX with a dynamic batch axis.

    The graph takes ``seq`` int64 ``(B, max_len)`` (left-padded with 0) and returns ``scores`` float
    ``(B, N + 1)``; column 0 is padding. Run it with onnxruntime.
    """
    scorer = SASRecScorer(model)
    out = Path(path)
    with _export_mode(model), torch.no_grad():
        torch.onnx.export(
            scorer, (_example(model),), str(out), input_names=["seq"], output_names=["scores"],
            dynamic_axes={"seq": {0: "batch"}, "scores": {0: "batch"}}, opset_version=opset, dynamo=False,
        )
    return out
