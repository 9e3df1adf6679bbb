"""NISQA model, features and converter on synthetic data (no real weights needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from attnkit.audio.quality import (
    DIMENSIONS,
    NISQA,
    AudioTooLongError,
    AudioTooShortError,
    CheckpointError,
    NISQAFeatures,
    PoolAttFF,
    load_nisqa_checkpoint,
    pad_segments,
)
from attnkit.audio.quality.convert import export_nisqa_checkpoint
from attnkit.audio.quality.features import _reflect_pad
from attnkit.audio.quality.model import _adaptive_max_pool


def _model(outputs: tuple[str, ...] = DIMENSIONS) -> NISQA:
    torch.manual_seed(0)
    m = NISQA(outputs)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


def test_reflect_pad_matches_numpy_also_for_short_signals() -> None:
    for n in (1, 2, 5, 100, 3000):
        x = torch.randn(n, dtype=torch.float64)
        got = _reflect_pad(x, 2048).numpy()
        want = np.pad(x.numpy(), 2048, mode="reflect") if n > 1 else np.pad(x.numpy(), 2048, mode="edge")
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("sr", "hop"), [(8000, 80), (16000, 160), (22050, 220), (44100, 441), (48000, 480)])
def test_feature_framing(sr: int, hop: int) -> None:
    f = NISQAFeatures()
    assert f.frame_params(sr)[0] == hop
    n = sr // 2 + 7
    x = torch.randn(n) * 0.1
    spec = f.melspec(x, sr)
    assert spec.shape == (48, 1 + n // hop)
    # floor: 80 dB below the global maximum, and never below 10 log10(1e-8) = -80 dB (amin);
    # bands above Nyquist sit exactly at the floor
    floor = max(-80.0, float(spec.max()) - 80)
    assert float(spec.min()) >= floor - 1e-4
    if sr < 40000:
        assert float(spec[-1].max()) == pytest.approx(floor, abs=1e-4)
        loud = f.melspec(x * 30, sr)  # +29.5 dB: now the relative floor binds
        assert float(loud.max()) > 0 and float(loud[-1].max()) == pytest.approx(
            float(loud.max()) - 80, abs=1e-3
        )
    seg = f(x, sr)
    assert seg.shape == (math.ceil((spec.shape[1] - 14) / 4), 1, 48, 15)
    assert torch.equal(seg[3, 0], spec[:, 12:27])


def test_too_short_and_too_long_are_clear() -> None:
    f = NISQAFeatures()
    assert f(torch.randn(2240) * 0.1, 16000).shape[0] == 1
    with pytest.raises(AudioTooShortError, match=r"clip\.wav: too short.*2239 samples.*at least 2240"):
        f(torch.randn(2239), 16000, name="clip.wav")
    short = NISQAFeatures(max_segments=3)
    with pytest.raises(AudioTooLongError, match="more than max_segments=3"):
        short(torch.randn(16000), 16000)


def test_model_shapes_and_padding_invariance() -> None:
    m = _model()
    a, b = torch.randn(7, 1, 48, 15), torch.randn(3, 1, 48, 15)
    padded, lengths = pad_segments([a, b])
    assert padded.shape == (2, 7, 1, 48, 15) and lengths.tolist() == [7, 3]
    with torch.no_grad():
        both = m(padded, lengths)
        single = m(b[None], torch.tensor([3]))
        # garbage in the padded region must not change the result
        padded[1, 3:] = 100.0
        noisy = m(padded, lengths)
    assert both.shape == (2, 5)
    torch.testing.assert_close(both[1], single[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(noisy, both, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="lengths must lie"):
        m(padded, torch.tensor([0, 3]))


@pytest.mark.parametrize(
    ("shape", "size"),
    [((3, 16, 48, 15), (24, 7)), ((3, 32, 24, 7), (12, 5)), ((3, 64, 12, 5), (6, 3)), ((2, 1, 9, 9), (3, 1))],
)
def test_strided_max_pool_equals_adaptive(shape: tuple[int, ...], size: tuple[int, int]) -> None:
    x = torch.randn(shape)
    assert torch.equal(_adaptive_max_pool(x, size), torch.nn.functional.adaptive_max_pool2d(x, size))
    cl = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(_adaptive_max_pool(cl, size), torch.nn.functional.adaptive_max_pool2d(x, size))


def test_fused_cnn_matches_reference_path() -> None:
    cnn = _model().cnn
    cnn.chunk_size = 4  # 11 segments: chunks of 4, 4 and 3
    with torch.no_grad():  # non-trivial BatchNorm affine parameters as well
        for i in range(1, 7):
            getattr(cnn, f"bn{i}").weight.uniform_(0.5, 1.5)
            getattr(cnn, f"bn{i}").bias.uniform_(-0.2, 0.2)
    x = torch.randn(11, 1, 48, 15) * 10 - 30
    with torch.no_grad():
        ref = cnn.forward_reference(x)
        fused = cnn.forward_fused(x)
        default = cnn(x)  # eval mode: the fused path
    assert fused.shape == ref.shape == (11, 384) and ref.abs().max() > 1
    torch.testing.assert_close(fused, ref, atol=1e-4, rtol=1e-5)
    assert torch.equal(default, fused)
    cnn.fused = False
    with torch.no_grad():
        assert torch.equal(cnn(x), ref)
    # training uses the reference path (BatchNorm on batch statistics), and gradients reach conv and BN
    cnn.fused = True
    cnn.train()
    out = cnn(x)
    out.sum().backward()
    assert cnn.bn1.weight.grad is not None and cnn.conv1.weight.grad is not None
    assert not torch.allclose(out, ref, atol=1e-3)


def test_pool_att_ff_equals_softmax_pooling() -> None:
    torch.manual_seed(1)
    pool = PoolAttFF(8, 16)
    x, lengths = torch.randn(2, 5, 8), torch.tensor([5, 2])
    out, w = pool(x, lengths, return_weights=True)
    score = pool.linear2(torch.relu(pool.linear1(x))).squeeze(-1)
    score[1, 2:] = -math.inf
    a = torch.softmax(score, dim=1)
    torch.testing.assert_close(w, a)
    torch.testing.assert_close(out, pool.linear3((a.unsqueeze(-1) * x).sum(1)))


@pytest.mark.parametrize("outputs", [DIMENSIONS, ("mos",)])
def test_export_then_convert_round_trip(tmp_path: Path, outputs: tuple[str, ...]) -> None:
    m = _model(outputs)
    path = export_nisqa_checkpoint(m, tmp_path / "m.tar")
    ck = torch.load(path, weights_only=True)
    prefix = "pool_layers.0.model." if len(outputs) > 1 else "pool.model."
    assert prefix + "linear3.bias" in ck["model_state_dict"]
    assert ck["model_state_dict"]["time_dependency.model.layers.0.self_attn.in_proj_weight"].shape == (
        192,
        64,
    )
    loaded, feats = load_nisqa_checkpoint(path)
    assert isinstance(loaded, NISQA) and loaded.output_names == outputs and feats == NISQAFeatures()
    x, n = torch.randn(2, 6, 1, 48, 15), torch.tensor([6, 4])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, n), m(x, n))


def test_converter_errors(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an original NISQA checkpoint"):
        load_nisqa_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.tar").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_nisqa_checkpoint(tmp_path / "junk.tar")
    path = export_nisqa_checkpoint(_model(), tmp_path / "m.tar")
    ck = torch.load(path, weights_only=True)
    ck["model_state_dict"]["cnn.model.extra.weight"] = torch.zeros(1)
    torch.save(ck, tmp_path / "extra.tar")
    with pytest.raises(CheckpointError, match=r"unexpected \[.cnn\.extra\.weight.\]"):
        load_nisqa_checkpoint(tmp_path / "extra.tar")
    ck["args"]["td"] = "lstm"
    torch.save(ck, tmp_path / "lstm.tar")
    with pytest.raises(CheckpointError, match="unsupported NISQA architecture"):
        load_nisqa_checkpoint(tmp_path / "lstm.tar")
