"""Registry entries of the recommendation models (listed by ``attnkit models``)."""

from __future__ import annotations

from typing import Any

from attnkit.core.models import ModelInfo, register_model


def _example() -> tuple[Any, tuple[Any, ...]]:
    import torch

    from attnkit.recsys.models.sasrec import SASRec

    model = SASRec(num_items=30, embed_dim=16, num_heads=2, num_layers=1, max_len=10, dropout=0.1)
    seq = torch.randint(1, 31, (2, 10))
    seq[1, :4] = 0  # left padding
    return model, (seq,)


register_model(ModelInfo(
    name="sasrec", class_path="attnkit.recsys.SASRec", domain="recsys",
    paper="Kang & McAuley, Self-Attentive Sequential Recommendation, ICDM 2018", config="sasrec-games",
    example=f"{__name__}:_example", export=("torchscript", "onnx"),
))
