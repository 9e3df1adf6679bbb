"""Load the weights of PyPOTS's SAITS network into :class:`~attnkit.timeseries.models.saits.SAITS`."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from attnkit.timeseries.models.saits import SAITS

__all__ = ["from_pypots_state_dict"]


def from_pypots_state_dict(model: SAITS, state: Mapping[str, Tensor]) -> SAITS:
    """Copy a PyPOTS ``BackboneSAITS`` state dict into ``model`` (in place) and return it.

    Accepts the state of ``pypots.imputation.SAITS(...).model`` (keys prefixed ``encoder.``) or of the
    backbone itself. The model must be built with the same sizes and two blocks with weighted combination.

    Raises:
        ValueError: keys are missing or shapes disagree (the message names the key).

    """
    if model.num_blocks != 2 or not model.weighted_combination:
        raise ValueError(
            "PyPOTS SAITS has two blocks and a weighted combination; build SAITS with the defaults"
        )
    src = {k.removeprefix("encoder."): v for k, v in state.items()}
    out: dict[str, Tensor] = {}

    def take(key: str) -> Tensor:
        if key not in src:
            raise ValueError(f"PyPOTS state dict has no key {key!r}; is it a SAITS checkpoint?")
        return src[key]

    for ours, theirs in (("embed1", "embedding_1"), ("embed2", "embedding_2")):
        out[f"{ours}.proj.weight"] = take(f"{theirs}.embedding_layer.weight")
        out[f"{ours}.proj.bias"] = take(f"{theirs}.embedding_layer.bias")
    for ours, theirs in (
        ("block1", "layer_stack_for_first_block"),
        ("block2", "layer_stack_for_second_block"),
    ):
        for i in range(len(getattr(model, ours))):
            p, q = f"{ours}.{i}", f"{theirs}.{i}"
            out[f"{p}.attn.qkv_proj.weight"] = torch.cat(
                [
                    take(f"{q}.slf_attn.w_qs.weight"),
                    take(f"{q}.slf_attn.w_ks.weight"),
                    take(f"{q}.slf_attn.w_vs.weight"),
                ],
                dim=0,
            )
            out[f"{p}.attn.out_proj.weight"] = take(f"{q}.slf_attn.fc.weight")
            for n in ("weight", "bias"):
                out[f"{p}.norm1.{n}"] = take(f"{q}.layer_norm.{n}")
                out[f"{p}.ffn.linear1.{n}"] = take(f"{q}.pos_ffn.linear_1.{n}")
                out[f"{p}.ffn.linear2.{n}"] = take(f"{q}.pos_ffn.linear_2.{n}")
                out[f"{p}.norm2.{n}"] = take(f"{q}.pos_ffn.layer_norm.{n}")
    for ours, theirs in (
        ("out1", "reduce_dim_z"),
        ("out2_beta", "reduce_dim_beta"),
        ("out2_gamma", "reduce_dim_gamma"),
        ("combine", "weight_combine"),
    ):
        for n in ("weight", "bias"):
            out[f"{ours}.{n}"] = take(f"{theirs}.{n}")
    own = model.state_dict()
    for k, v in out.items():
        if own[k].shape != v.shape:
            raise ValueError(
                f"shape of {k} is {tuple(own[k].shape)} here but {tuple(v.shape)} in the PyPOTS "
                "state; build SAITS with the same sizes (layers, d_model, heads, d_k, d_v, d_ffn)"
            )
    missing = set(own) - set(out) - {"feature_mean", "feature_std"}
    if missing:
        raise ValueError(f"no PyPOTS weights for {sorted(missing)}")
    model.load_state_dict(out, strict=False)
    return model
