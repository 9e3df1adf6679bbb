"""One test over every registered model: forward, backward, spec round trip, export where supported."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from attnkit.core.cli import discover
from attnkit.core.models import ModelInfo, build_model, model_spec, registered_models

discover()
MODELS = registered_models()


def _tensors(out: Any) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _tensors(v)]
    if isinstance(out, list | tuple):
        return [t for v in out for t in _tensors(v)]
    if dataclasses.is_dataclass(out):
        return [t for f in dataclasses.fields(out) for t in _tensors(getattr(out, f.name))]
    return []


def test_every_domain_registers_models() -> None:
    assert {m.domain for m in MODELS} >= {"core", "recsys", "timeseries", "vision", "audio"}
    assert len({m.name for m in MODELS}) == len(MODELS)


@pytest.mark.parametrize("info", MODELS, ids=[m.name for m in MODELS])
def test_registered_model(info: ModelInfo) -> None:
    torch.manual_seed(0)
    model, inputs = info.build_example()
    assert isinstance(model, info.load_class())

    # forward and backward: every parameter that takes part gets a finite gradient
    model.train()
    outs = [t for t in _tensors(model(*inputs)) if t.is_floating_point()]
    assert outs and all(torch.isfinite(t).all() for t in outs)
    sum(t.float().mean() for t in outs).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads, "no parameter received a gradient"
    assert all(torch.isfinite(g).all() for g in grads)

    # the spec rebuilds the architecture; with the state dict the outputs are identical
    spec = model_spec(model)
    assert spec is not None, f"{info.name}: constructor arguments were not recorded (decorate with @configurable)"
    clone = build_model(spec)
    assert type(clone) is type(model)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    model.eval()
    clone.eval()
    with torch.no_grad():
        for a, b in zip(_tensors(model(*inputs)), _tensors(clone(*inputs)), strict=True):
            torch.testing.assert_close(a, b)

    for fmt in info.export:
        _check_export(model, inputs, fmt)


def _check_export(model: nn.Module, inputs: tuple[Any, ...], fmt: str) -> None:
    with torch.no_grad():
        want = _tensors(model(*inputs))
    if fmt == "torchscript":
        traced = torch.jit.trace(model, inputs, check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
        buf.seek(0)
        got = _tensors(torch.jit.load(buf)(*inputs))
    elif fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        buf = io.BytesIO()
        torch.onnx.export(model, inputs, buf, dynamo=False)
        session = ort.InferenceSession(buf.getvalue())
        feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs, strict=False)}
        got = [torch.from_numpy(a) for a in session.run(None, feeds)]
    else:
        raise AssertionError(f"unknown export format {fmt!r}")
    for a, b in zip(want, got, strict=False):
        torch.testing.assert_close(b.float(), a.float(), atol=1e-4, rtol=1e-4)
