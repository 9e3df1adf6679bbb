from __future__ import annotations

import pytest
import torch

from attnkit.vision import sliding_window_inference
from attnkit.vision.inference import window_starts


def _pointwise(x: torch.Tensor) -> torch.Tensor:
    """A position-independent 'model': logits are functions of each pixel alone."""
    return torch.cat([x[:, :1] * 2 + 1, x[:, 1:2] - x[:, :1]], 1)


@pytest.mark.parametrize("size", [(100, 77), (32, 32), (20, 45), (1000, 1000)])
@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_sliding_window_reproduces_a_pointwise_model(size: tuple[int, int], blend: str) -> None:
    x = torch.randn(2, 3, *size)
    calls = []

    def predict(w: torch.Tensor) -> torch.Tensor:
        calls.append(w.shape)
        return _pointwise(w)

    patch = 256 if size == (1000, 1000) else 32
    out = sliding_window_inference(x, predict, patch, overlap=0.5, batch_size=3, blend=blend)  # type: ignore[arg-type]
    assert out.shape == (2, 2, *size)
    torch.testing.assert_close(out, _pointwise(x))
    assert all(c[-2:] == (patch, patch) for c in calls)  # every window has the full patch size


def test_windows_cover_the_image() -> None:
    assert window_starts(1000, 256, 192) == [0, 192, 384, 576, 744]
    assert window_starts(100, 256, 192) == [0]
    with pytest.raises(ValueError, match="overlap"):
        sliding_window_inference(torch.zeros(1, 1, 8, 8), _pointwise, 4, overlap=1.0)


def test_blending_weights_window_centres() -> None:
    """With a model whose output depends on the window position, Gaussian blending favours centres."""
    x = torch.zeros(1, 1, 48, 48)

    def edge_bad(w: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(w.shape[0], 1, *w.shape[-2:])
        out[..., :4, :] = out[..., -4:, :] = out[..., :, :4] = out[..., :, -4:] = 1.0  # errors at borders
        return out

    g = sliding_window_inference(x, edge_bad, 32, overlap=0.5, blend="gaussian")
    c = sliding_window_inference(x, edge_bad, 32, overlap=0.5, blend="constant")
    inner = (slice(None), slice(None), slice(8, 40), slice(8, 40))
    assert g[inner].abs().mean() < c[inner].abs().mean()
