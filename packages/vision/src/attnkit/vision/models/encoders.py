"""Encoders from segmentation-models-pytorch / timm by name, with local weight files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from attnkit.core.errors import CheckpointNotFoundError
from attnkit.core.io import load_checkpoint

__all__ = ["build_encoder", "load_encoder_weights"]

_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


def load_encoder_weights(encoder: nn.Module, path: str | Path, *, strict: bool = True) -> nn.Module:
    """Load a local state dict into ``encoder`` (``torch.load(weights_only=True)`` or safetensors).

    Accepts a plain state dict, a dict holding one under ``"state_dict"`` or ``"model"``, and keys
    prefixed with ``"encoder."`` (as saved from a whole smp model).

    Args:
        encoder: the module to fill.
        path: ``.pth``/``.pt``/``.bin``/``.ckpt`` (torch) or ``.safetensors`` file.
        strict: require the keys to match exactly.

    Returns:
        ``encoder``, for chaining.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the keys do not fit the encoder (names the missing / unexpected keys).

    """
    p = Path(path).expanduser()
    state: Any
    if not p.is_file():
        raise CheckpointNotFoundError(
            f"encoder weight file {p} does not exist; pass the path of a local state dict (nothing is downloaded)"
        )
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        state = load_checkpoint(p, map_location="cpu")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    # nn.Module's own loader: smp encoders override load_state_dict (dropping the classifier keys)
    result = nn.Module.load_state_dict(encoder, dict(state), strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise ValueError(
            f"{p} does not fit the encoder: missing keys {result.missing_keys[:5]}"
            f"{'...' if len(result.missing_keys) > 5 else ''}, unexpected keys {result.unexpected_keys[:5]}"
            f"{'...' if len(result.unexpected_keys) > 5 else ''}. Was it saved from the same encoder_name?"
        )
    return encoder


def build_encoder(name: str, *, in_channels: int = 3, depth: int = 5,
                  weights: str | None = None) -> nn.Module:
    """Build an smp encoder by name (``"resnet34"``, ``"efficientnet-b0"``, ``"tu-<any timm model>"``, ...).

    Args:
        name: smp encoder name; ``tu-`` prefixes a timm model name.
        in_channels: input channels.
        depth: number of downsampling stages (features at strides 2 .. ``2**depth``).
        weights: ``None`` (random init, the default: nothing is downloaded), a local weight file (see
            :func:`load_encoder_weights`), or an smp weight name such as ``"imagenet"`` (needs network or
            a filled torch hub cache).

    Returns:
        The encoder; ``encoder.out_channels`` lists the channels of its ``depth + 1`` feature maps
        (the first is the input itself).

    """
    is_file = weights is not None and (
        weights.endswith(_WEIGHT_SUFFIXES) or Path(weights).expanduser().is_file()
    )
    from segmentation_models_pytorch.encoders import get_encoder  # heavy (timm): imported when building

    encoder = get_encoder(name, in_channels=in_channels, depth=depth, weights=None if is_file else weights)
    if is_file:
        assert weights is not None
        load_encoder_weights(encoder, weights)
    return encoder
