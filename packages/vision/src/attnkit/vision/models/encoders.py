"""Encoders from segmentation-models-pytorch / timm by name, with local weight files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnkit.core.errors import CheckpointNotFoundError
from attnkit.core.io import load_checkpoint

__all__ = ["EncoderWeightsUnavailableError", "build_encoder", "find_pretrained_weights", "load_encoder_weights"]

_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


class EncoderWeightsUnavailableError(FileNotFoundError):
    """A named pretrained weight (``encoder_weights="imagenet"``) is neither cached locally nor downloadable."""


def _offline() -> bool:
    """Whether the user asked for no network (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set to 1/true)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_checkpoints() -> Path:
    """The torch hub checkpoints folder (``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_pretrained_weights(name: str, weights: str, *, download: bool = True) -> Path:
    """Return a local file with smp's pretrained weights ``weights`` (e.g. ``"imagenet"``) of encoder ``name``.

    Looks, in order, in the torch hub checkpoints folder for ``<name>.<weights>.safetensors`` (or ``.pth``:
    a file you placed there yourself), in the Hugging Face hub cache for the file smp downloads
    (``smp-hub/<name>.<weights>``, ``model.safetensors`` at smp's pinned revision), and then downloads it
    into that cache -- unless ``download`` is false or ``HF_HUB_OFFLINE=1``.

    Args:
        name: smp encoder name (not a ``tu-`` timm name).
        weights: smp weight name (``"imagenet"``, ``"ssl"``, ...).
        download: allow a download when nothing is cached.

    Returns:
        The path of the weight file.

    Raises:
        KeyError: ``name`` is not an smp encoder or has no weights called ``weights``.
        EncoderWeightsUnavailableError: not cached and not downloadable; the message names the weight,
            where it looked and where to put the file.

    """
    from segmentation_models_pytorch.encoders import encoders

    if name not in encoders:
        raise KeyError(f"unknown smp encoder {name!r}; see segmentation_models_pytorch.encoders.get_encoder_names()")
    settings = encoders[name]["pretrained_settings"]
    if weights not in settings:
        raise KeyError(f"encoder {name!r} has no pretrained weights {weights!r}; available: {sorted(settings)}")
    repo_id, revision = settings[weights]["repo_id"], settings[weights]["revision"]
    hub = _hub_checkpoints()
    for suffix in (".safetensors", ".pth"):
        placed = hub / f"{name}.{weights}{suffix}"
        if placed.is_file():
            return placed
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "model.safetensors", revision=revision)
    if isinstance(cached, str):
        return Path(cached)
    reason = "HF_HUB_OFFLINE is set" if _offline() else "download=False"
    if download and not _offline():
        try:
            return Path(hf_hub_download(repo_id, filename="model.safetensors", revision=revision))
        except Exception as e:  # no network, proxy, 404 ...: every failure gets the same actionable message
            reason = f"download failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    raise EncoderWeightsUnavailableError(
        f"encoder weights {weights!r} for {name!r} (Hugging Face {repo_id}, model.safetensors) are not cached "
        f"({reason}); looked in {hub / f'{name}.{weights}.safetensors'} and the Hugging Face cache "
        f"{constants.HF_HUB_CACHE}. On a machine with network run `huggingface-cli download {repo_id} "
        f"model.safetensors --revision {revision}` and copy the file to {hub / f'{name}.{weights}.safetensors'}, "
        "or pass encoder_weights=<path of a local state dict>"
    )


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
            :func:`load_encoder_weights`), or an smp weight name such as ``"imagenet"``: found by
            :func:`find_pretrained_weights` (a file placed in the torch hub checkpoints folder, the Hugging
            Face cache, or a download); ``tu-`` (timm) encoders take any name there and load timm's
            default pretrained tag.

    Raises:
        EncoderWeightsUnavailableError: named weights that are neither cached nor downloadable.

    Returns:
        The encoder; ``encoder.out_channels`` lists the channels of its ``depth + 1`` feature maps
        (the first is the input itself).

    """
    is_file = weights is not None and (
        weights.endswith(_WEIGHT_SUFFIXES) or Path(weights).expanduser().is_file()
    )
    from segmentation_models_pytorch.encoders import get_encoder  # heavy (timm): imported when building

    if weights is None or is_file:
        encoder = get_encoder(name, in_channels=in_channels, depth=depth, weights=None)
        if weights is not None:
            load_encoder_weights(encoder, weights)
        return encoder
    if name.startswith("tu-"):
        return _timm_pretrained(name, in_channels=in_channels, depth=depth, weights=weights)
    from segmentation_models_pytorch.encoders import encoders

    if name not in encoders:  # deprecated "timm-" aliases of timm models: smp resolves them itself
        return get_encoder(name, in_channels=in_channels, depth=depth, weights=weights)
    # smp's own encoders: find the file (placed, cached or downloaded), load it into the 3-channel encoder,
    # then adapt the first convolution to in_channels as smp does for pretrained weights
    path = find_pretrained_weights(name, weights)
    encoder = get_encoder(name, in_channels=3, depth=depth, weights=None)
    load_encoder_weights(encoder, path)
    encoder.set_in_channels(in_channels, pretrained=True)  # type: ignore[operator]
    return encoder


def _timm_pretrained(name: str, *, in_channels: int, depth: int, weights: str) -> nn.Module:
    """A ``tu-`` encoder with timm's pretrained weights (timm reads the Hugging Face / torch hub caches itself)."""
    import timm
    from huggingface_hub import constants
    from segmentation_models_pytorch.encoders import get_encoder

    model = name.split("-", 1)[1]
    try:
        cfg = timm.models.get_pretrained_cfg(model)
        source = (cfg.hf_hub_id or cfg.url) if cfg is not None else None
    except Exception:  # unknown names are reported by get_encoder below
        source = None
    try:
        return get_encoder(name, in_channels=in_channels, depth=depth, weights=True)  # type: ignore[arg-type]
    except (OSError, RuntimeError, ValueError) as e:
        raise EncoderWeightsUnavailableError(
            f"pretrained weights {weights!r} for timm encoder {name!r} ({source or 'no pretrained source'}) are not "
            f"cached and could not be downloaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            f"timm looks in the Hugging Face cache {constants.HF_HUB_CACHE} and in {_hub_checkpoints()}: fill one on "
            "a machine with network (build the encoder once there) and copy it here, or pass encoder_weights=<path "
            "of a local state dict>"
        ) from e
