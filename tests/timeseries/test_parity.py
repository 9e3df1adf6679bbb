"""SAITS parity with PyPOTS: same weights, same inputs and masks -> same outputs in float64."""

from __future__ import annotations

import pytest
import torch

from attnkit.timeseries.models import SAITS, from_pypots_state_dict

pypots_saits = pytest.importorskip("pypots.imputation.saits.core")


def _pair(n_layers: int, d_model: int, heads: int, d_k: int, d_v: int, d_ffn: int, L: int = 12, F: int = 5):
    torch.manual_seed(0)
    ref = (
        pypots_saits._SAITS(
            n_layers,
            L,
            F,
            d_model,
            heads,
            d_k,
            d_v,
            d_ffn,
            0.0,
            0.0,
            True,
            1.0,
            1.0,
            training_loss=torch.nn.L1Loss(),
            validation_metric=torch.nn.L1Loss(),
        )
        .double()
        .eval()
    )
    ours = (
        SAITS(
            F,
            L,
            num_layers=n_layers,
            embed_dim=d_model,
            num_heads=heads,
            head_dim=d_k,
            value_head_dim=d_v,
            ffn_dim=d_ffn,
            dropout=0.0,
        )
        .double()
        .eval()
    )
    from_pypots_state_dict(ours, ref.state_dict())
    return ref, ours


@pytest.mark.parametrize("sizes", [(2, 32, 4, 8, 6, 16), (1, 24, 2, 16, 16, 8)])
def test_outputs_identical_to_pypots_float64(sizes: tuple[int, ...]) -> None:
    ref, ours = _pair(*sizes)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 12, 5, dtype=torch.float64, generator=g)
    mask = (torch.rand(3, 12, 5, generator=g) > 0.4).double()
    x = x * mask  # PyPOTS convention: missing entries are zero
    with torch.no_grad():
        r = ref({"X": x, "missing_mask": mask})
        o = ours(x, mask)
    for name, a in (
        ("X_tilde_1", o.x_tilde_1),
        ("X_tilde_2", o.x_tilde_2),
        ("X_tilde_3", o.x_tilde_3),
        ("imputation", o.imputation),
        ("combining_weights", o.combining_weights),
    ):
        torch.testing.assert_close(a, r[name], rtol=1e-12, atol=1e-12, msg=f"{name} differs from PyPOTS")
    torch.testing.assert_close(o.attn_weights, r["second_DMSA_attn_weights"].mean(1), rtol=1e-12, atol=1e-12)


def test_gradients_identical_to_pypots_float64() -> None:
    ref, ours = _pair(2, 16, 2, 8, 8, 16)
    x = torch.randn(2, 12, 5, dtype=torch.float64)
    mask = (torch.rand(2, 12, 5) > 0.3).double()
    ref({"X": x * mask, "missing_mask": mask})["X_tilde_3"].pow(2).sum().backward()
    ours(x * mask, mask).x_tilde_3.pow(2).sum().backward()
    g_ref = ref.encoder.layer_stack_for_first_block[0].pos_ffn.linear_1.weight.grad
    torch.testing.assert_close(ours.block1[0].ffn.linear1.weight.grad, g_ref, rtol=1e-10, atol=1e-12)
    g_ref = ref.encoder.weight_combine.weight.grad
    torch.testing.assert_close(ours.combine.weight.grad, g_ref, rtol=1e-10, atol=1e-12)


def test_converter_rejects_mismatched_sizes() -> None:
    ref, _ = _pair(2, 32, 4, 8, 6, 16)
    other = SAITS(5, 12, num_layers=2, embed_dim=32, num_heads=4, head_dim=8, value_head_dim=8, ffn_dim=16)
    with pytest.raises(ValueError, match="qkv_proj"):
        from_pypots_state_dict(other, ref.state_dict())
