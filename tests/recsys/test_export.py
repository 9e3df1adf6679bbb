from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from attnkit.recsys import SASRec, SASRecScorer
from attnkit.recsys.export import export_onnx, export_torchscript


def _model() -> SASRec:
    torch.manual_seed(0)
    return SASRec(30, embed_dim=16, num_heads=2, num_layers=2, max_len=8).eval()


SEQ = torch.tensor([[0, 0, 0, 0, 0, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 0, 9]])


def test_torchscript_matches_eager(tmp_path: Path) -> None:
    m = _model()
    with torch.no_grad():
        ref = SASRecScorer(m)(SEQ)
    export_torchscript(m, tmp_path / "sasrec.pt")
    loaded = torch.jit.load(str(tmp_path / "sasrec.pt"))
    with torch.no_grad():
        torch.testing.assert_close(loaded(SEQ), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(loaded(SEQ[1:]), ref[1:], atol=1e-5, rtol=1e-5)  # other batch size


def test_onnx_matches_eager(tmp_path: Path) -> None:
    import onnxruntime as ort

    m = _model()
    with torch.no_grad():
        ref = SASRecScorer(m)(SEQ).numpy()
    path = export_onnx(m, tmp_path / "sasrec.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(["scores"], {"seq": SEQ.numpy()})[0]
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)
    one = sess.run(["scores"], {"seq": SEQ[2:].numpy()})[0]  # dynamic batch axis
    np.testing.assert_allclose(one, ref[2:], atol=1e-5, rtol=1e-5)
    assert m.training is False and m.blocks[0].attn.backend == "auto"  # export restored the backend
