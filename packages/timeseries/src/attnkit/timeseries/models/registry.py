"""Registry entries of the imputation models (listed by ``attnkit models``)."""

from __future__ import annotations

from typing import Any

from attnkit.core.models import ModelInfo, register_model


def _example() -> tuple[Any, tuple[Any, ...]]:
    import torch

    from attnkit.timeseries.models.saits import SAITS

    model = SAITS(num_features=5, num_steps=8, num_layers=1, embed_dim=16, num_heads=2, head_dim=8,
                  value_head_dim=8, ffn_dim=16)
    mask = (torch.rand(2, 8, 5) > 0.3).float()
    return model, (torch.randn(2, 8, 5) * mask, mask)


register_model(ModelInfo(
    name="saits", class_path="attnkit.timeseries.SAITS", domain="timeseries",
    paper="Du, Cote & Liu, SAITS: Self-Attention-based Imputation for Time Series, ESWA 2023",
    config="saits-physionet2012", example=f"{__name__}:_example", export=(),
))
