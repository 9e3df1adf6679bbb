"""Registry entry of the demonstration model (listed by ``attnkit models``)."""

from __future__ import annotations

from typing import Any

from attnkit.core.models import ModelInfo, register_model


def _example() -> tuple[Any, tuple[Any, ...]]:
    import torch

    from attnkit.core.tasks.sequence_classification import SequenceClassifier

    model = SequenceClassifier(vocab_size=16, num_classes=3, embed_dim=16, num_heads=2, num_layers=1, max_len=12)
    return model, (torch.randint(1, 16, (2, 12)), torch.tensor([12, 7]))


register_model(ModelInfo(
    name="sequence-classifier", class_path="attnkit.core.tasks.SequenceClassifier", domain="core",
    paper="demonstration model (transformer encoder + masked mean pooling), no paper", config="demo",
    example=f"{__name__}:_example", export=("torchscript",),
))
