"""Load the weights of ``torch.nn`` attention modules into attnkit's.

``torch.nn.MultiheadAttention`` packs ``[W_q; W_k; W_v]`` in ``in_proj_weight`` with heads contiguous inside
each block, which is exactly the layout of :class:`MultiHeadAttention`'s fused ``qkv_proj``; the
converters copy tensors, they do not re-derive anything. Equal outputs are tested.

Differences to keep in mind when comparing: torch takes ``key_padding_mask`` with ``True`` = *padded* --
use :meth:`KeyPaddingMask.from_padding`; torch defaults to ``batch_first=False`` (``(L, B, D)``) while
attnkit is always ``(B, L, D)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnkit.core.attention import Backend
from attnkit.core.layers.mha import MultiHeadAttention
from attnkit.core.layers.transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = ["from_torch_encoder", "from_torch_encoder_layer", "from_torch_mha"]


@torch.no_grad()
def from_torch_mha(m: nn.MultiheadAttention, *, cross_attention: bool = False,
                   backend: Backend = "auto") -> MultiHeadAttention:
    """Build a :class:`MultiHeadAttention` with the weights of ``m``.

    Args:
        m: the torch module (``add_bias_kv`` and ``add_zero_attn`` are not supported).
        cross_attention: build separate query and key/value projections (for ``m(query, kv, kv)`` with
            one key/value input; needed when ``m.kdim != m.embed_dim``).
        backend: attention backend of the result.

    Raises:
        ValueError: ``m`` uses a feature attnkit does not model.

    """
    if m.bias_k is not None or m.add_zero_attn:
        raise ValueError("add_bias_kv / add_zero_attn are not supported by attnkit's MultiHeadAttention")
    if m.kdim != m.vdim:
        raise ValueError(
            f"kdim={m.kdim} != vdim={m.vdim}: attnkit's cross-attention takes one key/value input"
        )
    if m.kdim != m.embed_dim and not cross_attention:
        raise ValueError(f"kdim={m.kdim} differs from embed_dim={m.embed_dim}; pass cross_attention=True")
    e = m.embed_dim
    has_bias = m.in_proj_bias is not None
    ours = MultiHeadAttention(e, m.num_heads, dropout=m.dropout, bias=has_bias,
                              cross_attention=cross_attention, kdim=m.kdim if cross_attention else None,
                              backend=backend)
    if m._qkv_same_embed_dim:
        assert m.in_proj_weight is not None
        wq, wk, wv = m.in_proj_weight.split(e, dim=0)
    else:
        wq, wk, wv = m.q_proj_weight, m.k_proj_weight, m.v_proj_weight
    bq = bk = bv = None
    if has_bias:
        assert m.in_proj_bias is not None
        bq, bk, bv = m.in_proj_bias.split(e, dim=0)
    if cross_attention:
        assert ours.q_proj is not None and ours.kv_proj is not None
        ours.q_proj.weight.copy_(wq)
        ours.kv_proj.weight.copy_(torch.cat([wk, wv], dim=0))
        if has_bias:
            assert bq is not None and bk is not None and bv is not None
            ours.q_proj.bias.copy_(bq)
            ours.kv_proj.bias.copy_(torch.cat([bk, bv]))
    else:
        assert ours.qkv_proj is not None
        ours.qkv_proj.weight.copy_(torch.cat([wq, wk, wv], dim=0))
        if has_bias:
            assert bq is not None and bk is not None and bv is not None
            ours.qkv_proj.bias.copy_(torch.cat([bq, bk, bv]))
    out = ours.out_proj
    assert isinstance(out, nn.Linear)
    out.weight.copy_(m.out_proj.weight)
    if out.bias is not None:
        out.bias.copy_(m.out_proj.bias)
    return ours


def _activation_name(layer: nn.TransformerEncoderLayer) -> str:
    code = getattr(layer, "activation_relu_or_gelu", 0)
    if code == 1 or layer.activation is F.relu or isinstance(layer.activation, nn.ReLU):
        return "relu"
    if code == 2 or layer.activation is F.gelu or isinstance(layer.activation, nn.GELU):
        return "gelu"
    raise ValueError(f"activation {layer.activation!r} is not supported; attnkit layers use 'relu' or 'gelu'")


@torch.no_grad()
def from_torch_encoder_layer(layer: nn.TransformerEncoderLayer, *, backend: Backend = "auto",
                             ) -> TransformerEncoderLayer:
    """Build a :class:`TransformerEncoderLayer` with the weights and settings of ``layer`` (pre/post-norm)."""
    e = layer.self_attn.embed_dim
    has_bias = layer.linear1.bias is not None
    ours = TransformerEncoderLayer(
        e, layer.self_attn.num_heads, layer.linear1.out_features, dropout=layer.dropout1.p,
        attn_dropout=layer.self_attn.dropout, activation=_activation_name(layer),  # type: ignore[arg-type]
        norm_first=layer.norm_first, bias=has_bias, layer_norm_eps=layer.norm1.eps, backend=backend,
    )
    ours.self_attn = from_torch_mha(layer.self_attn, backend=backend)
    ours.ffn.linear1.load_state_dict(layer.linear1.state_dict())
    ours.ffn.linear2.load_state_dict(layer.linear2.state_dict())
    ours.norm1.load_state_dict(layer.norm1.state_dict())
    ours.norm2.load_state_dict(layer.norm2.state_dict())
    return ours


@torch.no_grad()
def from_torch_encoder(encoder: nn.TransformerEncoder, *, backend: Backend = "auto") -> TransformerEncoder:
    """Build a :class:`TransformerEncoder` with the layers (and final norm, if any) of ``encoder``."""
    layers = [from_torch_encoder_layer(lyr, backend=backend) for lyr in encoder.layers]  # type: ignore[arg-type]
    ours = TransformerEncoder(layers[0], len(layers), final_norm=encoder.norm is not None)
    for i, lyr in enumerate(layers):
        ours.layers[i] = lyr
    if encoder.norm is not None:
        ours.norm.load_state_dict(encoder.norm.state_dict())
    return ours
