from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from attnkit.timeseries import SAITS, saits_air_quality, saits_base, saits_physionet2012


def tiny(**kw: object) -> SAITS:
    torch.manual_seed(0)
    args = {"num_layers": 1, "embed_dim": 16, "num_heads": 2, "head_dim": 8, "value_head_dim": 4,
            "ffn_dim": 16, "dropout": 0.0}
    args.update(kw)
    return SAITS(3, 8, **args).eval()  # type: ignore[arg-type]


def data(b: int = 2, steps: int = 8, f: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, steps, f, generator=g)
    m = (torch.rand(b, steps, f, generator=g) > 0.3).float()
    return x, m


def test_forward_shapes_and_observed_values_kept() -> None:
    x, m = data()
    out = tiny()(x, m)
    assert out.imputation.shape == (2, 8, 3) and out.combining_weights is not None
    assert out.attn_weights is not None and out.attn_weights.shape == (2, 8, 8)
    torch.testing.assert_close(out.imputation[m.bool()], x[m.bool()])
    assert len(out.estimates) == 3


def test_missing_values_do_not_leak() -> None:
    x, m = data()
    model = tiny()
    x2 = x.clone()
    x2[~m.bool()] = 1e6  # garbage at missing positions (also NaN) must not matter
    torch.testing.assert_close(model(x, m).x_tilde_3, model(x2, m).x_tilde_3)
    x2[~m.bool()] = float("nan")
    torch.testing.assert_close(model(x, m).x_tilde_3, model(x2, m).x_tilde_3)


def test_diagonal_mask_blocks_self_attention() -> None:
    x, m = data()
    out = tiny()(x, m)
    assert out.attn_weights is not None
    assert out.attn_weights.diagonal(dim1=-2, dim2=-1).abs().max() == 0
    plain = tiny(diagonal_mask=False)(x, m)
    assert plain.attn_weights is not None and plain.attn_weights.diagonal(dim1=-2, dim2=-1).min() > 0


def test_auto_backend_runs_math_for_bf16_on_cpu() -> None:
    """bf16 on the CPU takes the math path (torch's fused CPU backward is slow there); fp32 keeps core's auto."""
    from attnkit.core import record_backends

    x, m = data()
    model = tiny(num_layers=2).train()
    with record_backends() as fp32:
        model(x, m)
    with record_backends() as bf16, torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, m)
    assert "sdpa" in fp32 and set(bf16) == {"math"}
    assert out.x_tilde_3.dtype == torch.bfloat16
    pinned = tiny(num_layers=2, backend="sdpa")
    with record_backends() as used, torch.autocast("cpu", dtype=torch.bfloat16):
        pinned(x, m)
    assert used.count("sdpa") == 3  # an explicit backend is kept; the weight-returning last layer is math
    torch.testing.assert_close(model(x, m).x_tilde_3, tiny(num_layers=2, backend="sdpa").train()(x, m).x_tilde_3)


def test_ablation_switches() -> None:
    x, m = data()
    one = tiny(num_blocks=1)
    assert not hasattr(one, "block2")
    o = one(x, m)
    assert o.x_tilde_3 is o.x_tilde_1 and len(o.estimates) == 1
    nowc = tiny(weighted_combination=False)
    assert not hasattr(nowc, "combine")
    o = nowc(x, m)
    assert o.x_tilde_3 is o.x_tilde_2 and o.combining_weights is None and len(o.estimates) == 2
    with pytest.raises(ValueError, match="1 or 2"):
        SAITS(3, 8, num_blocks=3)


def test_paper_builders_sizes() -> None:
    p = saits_physionet2012()
    assert (p.num_features, p.num_steps, len(p.block1)) == (37, 48, 5)
    assert p.block1[0].attn.num_heads == 8 and p.block1[0].attn.head_dim == 32
    # PyPOTS reports 5,322,806 trainable parameters for this configuration
    assert sum(t.numel() for t in p.parameters()) == 5_322_806
    a = saits_air_quality()
    assert (a.num_features, a.num_steps, len(a.block1)) == (132, 24, 1)
    assert a.block1[0].attn.value_head_dim == 64 and a.block1[0].attn.head_dim == 128
    assert len(saits_base(5, 10).block2) == 2


def test_wrong_shape_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"\(B, 8, 3\).*impute"):
        tiny()(torch.zeros(2, 9, 3), torch.ones(2, 9, 3))


def test_impute_numpy_torch_pandas_any_length() -> None:
    model = tiny()
    model.set_scaler(torch.tensor([10.0, 0.0, -5.0]), torch.tensor([2.0, 1.0, 3.0]))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(29, 3)) * [2, 1, 3] + [10, 0, -5]
    x[rng.random((29, 3)) < 0.3] = np.nan
    out = model.impute(x)
    assert isinstance(out, np.ndarray) and out.shape == (29, 3) and not np.isnan(out).any()
    np.testing.assert_array_equal(out[~np.isnan(x)], x[~np.isnan(x)])
    # torch in, torch out (float32), same values
    t = model.impute(torch.tensor(x, dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), out, rtol=1e-4, atol=1e-4)
    # pandas keeps index and columns
    df = pd.DataFrame(x, columns=["a", "b", "c"], index=pd.date_range("2020", periods=29, freq="h"))
    d = model.impute(df)
    assert isinstance(d, pd.DataFrame) and list(d.columns) == ["a", "b", "c"] and d.index.equals(df.index)
    np.testing.assert_allclose(d.to_numpy(), out, rtol=1e-6)
    # batch of series and a series shorter than the window (padded with missing steps)
    assert model.impute(np.stack([x, x])).shape == (2, 29, 3)
    short = model.impute(x[:5])
    assert short.shape == (5, 3) and not np.isnan(short).any()


def test_impute_stitching_equals_direct_forward_on_exact_window() -> None:
    model = tiny()
    x, m = data(1)
    xn = x.clone()
    xn[~m.bool()] = float("nan")
    direct = model(x * m, m).imputation[0]
    via = model.impute(xn[0], standardised=True)
    torch.testing.assert_close(via, direct)


def test_impute_bad_input() -> None:
    model = tiny()
    with pytest.raises(ValueError, match="trained on 3 features but the input has 4"):
        model.impute(np.zeros((10, 4)))
    with pytest.raises(ValueError, match="infinite"):
        model.impute(np.array([[1.0, np.inf, 0.0]] * 10))
    with pytest.raises(ValueError, match=r"non-numeric columns \['c'\]"):
        model.impute(pd.DataFrame({"a": [1.0] * 10, "b": [2.0] * 10, "c": ["x"] * 10}))
    with pytest.raises(TypeError, match="numpy array"):
        model.impute([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="numeric array with NaN for missing values, got dtype <U1"):
        model.impute(np.array([["1", "2", "x"]] * 10))
    with pytest.raises(ValueError, match=r"floating-point tensor with NaN for missing values, got torch\.int64"):
        model.impute(torch.zeros(10, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\(T, F\) or \(N, T, F\) input, got shape \(10,\)"):
        model.impute(np.zeros(10))
    # an all-NaN feature is imputed from the other features (documented handling)
    x = np.random.default_rng(0).normal(size=(12, 3))
    x[:, 1] = np.nan
    assert not np.isnan(model.impute(x)).any()


def test_plot_imputation_writes_figure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from attnkit.timeseries import plot_imputation

    model = tiny()
    x = np.random.default_rng(0).normal(size=(20, 3))
    truth = np.full_like(x, np.nan)
    truth[[3, 7], 0] = x[[3, 7], 0]
    given = x.copy()
    given[[3, 7], 0] = np.nan
    fig = plot_imputation(given, model.impute(given), truth, feature=0, name="HR", path=tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]  # type: ignore[attr-defined]
    assert labels == ["imputation", "observed", "held-out truth"]
