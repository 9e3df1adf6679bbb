"""Load the original NISQA checkpoints (``nisqa.tar``, ``nisqa_mos_only.tar``, ``nisqa_tts.tar``).

The files are read with ``torch.load(weights_only=True)``; their ``args`` dict selects the architecture and
the feature settings, and the state dict is renamed to attnkit's modules (:func:`convert_state_dict`).

The weights are licensed CC BY-NC-SA 4.0 by their authors and are never shipped with attnkit: point to a
file, or call :func:`pretrained_checkpoint` with ``download=True`` on a networked machine (the licence is
shown before downloading).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnkit.audio.quality.features import NISQAFeatures
from attnkit.audio.quality.model import DIMENSIONS, NISQA, PoolAttFF
from attnkit.audio.quality.model_tts import NISQATTS
from attnkit.audio.quality.registry import PRETRAINED, WEIGHTS_DATASET, WEIGHTS_LICENCE
from attnkit.core import TransformerEncoderLayer
from attnkit.core.errors import CheckpointError as _CoreCheckpointError
from attnkit.core.errors import CheckpointNotFoundError, DataNotFoundError
from attnkit.core.io import load_checkpoint

__all__ = [
    "CheckpointError",
    "convert_state_dict",
    "export_nisqa_checkpoint",
    "features_from_args",
    "load_nisqa_checkpoint",
    "pretrained_checkpoint",
]


class CheckpointError(_CoreCheckpointError):
    """A file is not a NISQA checkpoint this converter understands (a ``ValueError`` and a ``UserError``)."""


def features_from_args(args: dict[str, Any]) -> NISQAFeatures:
    """Build the :class:`NISQAFeatures` a checkpoint was trained with (its ``ms_*`` args)."""
    if args.get("ms_sr") is not None:
        raise CheckpointError(f"checkpoint resamples to ms_sr={args['ms_sr']}; only ms_sr=None is supported")
    return NISQAFeatures(
        n_fft=int(args["ms_n_fft"]),
        hop_length=float(args["ms_hop_length"]),
        win_length=float(args["ms_win_length"]),
        n_mels=int(args["ms_n_mels"]),
        fmax=float(args["ms_fmax"]),
        seg_length=int(args["ms_seg_length"]),
        seg_hop=int(args["ms_seg_hop_length"]),
        max_segments=int(args["ms_max_segments"]),
    )


def _build(args: dict[str, Any]) -> nn.Module:
    cnn, td, pool = args.get("cnn_model"), args.get("td"), args.get("pool")
    if args.get("double_ended"):
        raise CheckpointError("double-ended (full-reference) NISQA checkpoints are not supported")
    if args.get("td_2", "skip") != "skip":
        raise CheckpointError(f"td_2={args['td_2']!r} is not supported (only 'skip')")
    if cnn == "adapt" and td == "self_att" and pool == "att":
        if args.get("cnn_fc_out_h") or args.get("td_sa_pos_enc") or args.get("td_sa_pool_size"):
            raise CheckpointError("cnn_fc_out_h / td_sa_pos_enc / td_sa_pool_size are not supported")
        if tuple(args["cnn_kernel_size"]) != (3, 3):
            raise CheckpointError(f"cnn_kernel_size={args['cnn_kernel_size']} is not supported (only 3x3)")
        names = DIMENSIONS if args.get("model") == "NISQA_DIM" or args.get("dim") else ("mos",)
        return NISQA(
            names,
            cnn_channels=(args["cnn_c_out_1"], args["cnn_c_out_2"], args["cnn_c_out_3"]),
            cnn_pools=(tuple(args["cnn_pool_1"]), tuple(args["cnn_pool_2"]), tuple(args["cnn_pool_3"])),
            cnn_dropout=float(args["cnn_dropout"]),
            embed_dim=int(args["td_sa_d_model"]),
            num_heads=int(args["td_sa_nhead"]),
            num_layers=int(args["td_sa_num_layers"]),
            ffn_dim=int(args["td_sa_h"]),
            dropout=float(args["td_sa_dropout"]),
            pool_hidden=int(args["pool_att_h"]),
            pool_dropout=float(args["pool_att_dropout"] or 0.0),
        )
    if cnn == "standard" and td == "lstm" and pool == "last_step_bi":
        if args.get("td_lstm_num_layers") != 1 or not args.get("td_lstm_bidirectional"):
            raise CheckpointError("only a single-layer bidirectional LSTM is supported (CNN-LSTM)")
        return NISQATTS(
            lstm_hidden=int(args["td_lstm_h"]),
            fc_out=int(args["cnn_fc_out_h"]),
            dropout=float(args["cnn_dropout"]),
        )
    raise CheckpointError(f"unsupported NISQA architecture cnn_model={cnn!r}, td={td!r}, pool={pool!r}")


_SA_RULES: list[tuple[str, str]] = [
    (r"^cnn\.model\.", "cnn."),
    (r"^time_dependency\.model\.linear\.", "proj."),
    (r"^time_dependency\.model\.norm1\.", "norm."),
    (
        r"^time_dependency\.model\.layers\.(\d+)\.self_attn\.in_proj_",
        r"encoder.layers.\1.self_attn.qkv_proj.",
    ),
    (
        r"^time_dependency\.model\.layers\.(\d+)\.self_attn\.out_proj\.",
        r"encoder.layers.\1.self_attn.out_proj.",
    ),
    (r"^time_dependency\.model\.layers\.(\d+)\.linear(\d)\.", r"encoder.layers.\1.ffn.linear\2."),
    (r"^time_dependency\.model\.layers\.(\d+)\.norm(\d)\.", r"encoder.layers.\1.norm\2."),
    (r"^pool_layers\.(\d+)\.model\.", r"heads.\1."),
    (r"^pool\.model\.", "heads.0."),
]
_TTS_RULES: list[tuple[str, str]] = [
    (r"^cnn\.model\.", "cnn."),
    (r"^time_dependency\.model\.lstm\.", "lstm."),
    (r"^pool\.model\.linear\.", "head."),
]


def convert_state_dict(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an original NISQA state dict to ``model``'s parameter names.

    Raises:
        CheckpointError: keys that map to nothing, or missing / mis-shaped tensors.

    """
    rules = _TTS_RULES if isinstance(model, NISQATTS) else _SA_RULES
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for pat, rep in rules:
            new, n = re.subn(pat, rep, key)
            if n:
                out[new] = value
                break
        else:
            raise CheckpointError(f"unexpected tensor {key!r} in the checkpoint")
    own = model.state_dict()
    missing = sorted(set(own) - set(out))
    extra = sorted(set(out) - set(own))
    bad = [k for k in set(own) & set(out) if own[k].shape != out[k].shape]
    if missing or extra or bad:
        raise CheckpointError(
            f"checkpoint does not fit the model: missing {missing}, unexpected {extra}, shape mismatch {bad}"
        )
    return out


def load_nisqa_checkpoint(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, NISQAFeatures]:
    """Build the model described by an original NISQA checkpoint, load its weights, set eval mode.

    Args:
        path: ``nisqa.tar``, ``nisqa_mos_only.tar``, ``nisqa_tts.tar``, a checkpoint trained with the
            original code (same ``args`` / ``model_state_dict`` layout), or a ``.ckpt`` written by
            ``attnkit fit`` with :class:`SpeechQualityTask` (its feature settings are stored with it).
        map_location: device for the tensors.

    Returns:
        ``(model, features)``: :class:`NISQA` (or :class:`NISQATTS`) and the matching feature extractor.

    """
    p = Path(path)
    try:
        ckpt = load_checkpoint(p, map_location=map_location)  # names the file if missing or truncated
    except CheckpointNotFoundError:
        raise
    except _CoreCheckpointError as e:
        raise CheckpointError(str(e)) from None
    if isinstance(ckpt, dict) and "attnkit" in ckpt:  # trained with `attnkit fit` (SpeechQualityTask)
        from attnkit.core.models import load_model

        meta = dict(ckpt["attnkit"].get("meta") or {})
        return load_model(ckpt, map_location=str(map_location)), NISQAFeatures(**dict(meta.get("features") or {}))
    if not isinstance(ckpt, dict) or "args" not in ckpt or "model_state_dict" not in ckpt:
        keys = list(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{p}: not an original NISQA checkpoint (expected 'args' and 'model_state_dict', found {keys})"
        )
    args = dict(ckpt["args"])
    model = _build(args)
    model.load_state_dict(convert_state_dict(ckpt["model_state_dict"], model))
    return model.eval(), features_from_args(args)


def pretrained_checkpoint(
    name: str = "nisqa", root: str | os.PathLike[str] | None = None, *, download: bool = False
) -> Path:
    """Path of a released NISQA checkpoint under ``<data root>/nisqa-weights/``.

    Args:
        name: ``"nisqa"`` (MOS + dimensions), ``"nisqa_mos_only"`` or ``"nisqa_tts"``.
        root: data root (default ``ATTNKIT_DATA_DIR`` or ``~/.cache/attnkit``).
        download: fetch a missing file from the authors' GitHub release after printing the licence.

    Raises:
        FileNotFoundError: the file is missing and ``download`` is false; the message says how to get it.

    """
    from attnkit.core.data import dataset_dir, fetch

    if name not in PRETRAINED:
        raise ValueError(f"unknown NISQA checkpoint {name!r}; choose one of {sorted(PRETRAINED)}")
    rel = PRETRAINED[name]
    target = dataset_dir(WEIGHTS_DATASET, root) / rel
    if target.is_file():
        return target
    if not download:
        raise DataNotFoundError(
            f"{target} is missing. The NISQA weights are not shipped with attnkit "
            f"(licence: {WEIGHTS_LICENCE}). "
            f"Place {rel} there, pass a file (--weights PATH), or download the authors' release with "
            "download=True (CLI: --download), which shows the licence first."
        )
    print(
        f"Downloading the NISQA weights {rel!r} by Gabriel Mittag (github.com/gabrielmittag/NISQA).\n"
        f"Licence: {WEIGHTS_LICENCE} -- non-commercial use, attribution, share-alike; full text: "
        "https://creativecommons.org/licenses/by-nc-sa/4.0/ . By continuing you accept these terms.",
        file=sys.stderr,
    )
    return fetch(WEIGHTS_DATASET, root, files=[rel, "LICENSE_model_weights"]) / rel


def _args_for(model: NISQA, features: NISQAFeatures) -> dict[str, Any]:
    cnn, layer = model.cnn, model.encoder.layers[0]
    head = model.heads[0]
    assert isinstance(layer, TransformerEncoderLayer) and isinstance(head, PoolAttFF)
    dim = model.output_names == DIMENSIONS
    return {
        "model": "NISQA_DIM" if dim else "NISQA",
        "dim": dim,
        "double_ended": False,
        "ms_sr": None,
        "ms_fmax": features.fmax,
        "ms_n_fft": features.n_fft,
        "ms_hop_length": features.hop_length,
        "ms_win_length": features.win_length,
        "ms_n_mels": features.n_mels,
        "ms_seg_length": features.seg_length,
        "ms_seg_hop_length": features.seg_hop,
        "ms_max_segments": features.max_segments,
        "cnn_model": "adapt",
        "cnn_c_out_1": cnn.conv1.out_channels,
        "cnn_c_out_2": cnn.conv2.out_channels,
        "cnn_c_out_3": cnn.conv3.out_channels,
        "cnn_kernel_size": (3, 3),
        "cnn_dropout": cnn.dropout.p,
        "cnn_fc_out_h": None,
        "cnn_pool_1": list(cnn.pools[0]),
        "cnn_pool_2": list(cnn.pools[1]),
        "cnn_pool_3": list(cnn.pools[2]),
        "td": "self_att",
        "td_sa_d_model": model.proj.out_features,
        "td_sa_nhead": layer.self_attn.num_heads,
        "td_sa_pool_size": None,
        "td_sa_pos_enc": False,
        "td_sa_num_layers": len(model.encoder.layers),
        "td_sa_h": layer.ffn.linear1.out_features,
        "td_sa_dropout": layer.dropout1.p,
        "td_2": "skip",
        "pool": "att",
        "pool_output_size": 1,
        "pool_att_h": head.linear1.out_features,
        "pool_att_dropout": head.dropout.p,
    }


def export_nisqa_checkpoint(model: NISQA, path: str | os.PathLike[str], features: NISQAFeatures | None = None) -> Path:
    """Write ``model`` in the original NISQA checkpoint layout (``args`` + ``model_state_dict``).

    The file loads with :func:`load_nisqa_checkpoint` and with the original NISQA code (for models whose
    ``output_names`` are ``DIMENSIONS`` (NISQA_DIM) or a single MOS output (NISQA)).
    """
    if model.output_names not in (DIMENSIONS, ("mos",)):
        raise CheckpointError(
            f"the original layout holds NISQA_DIM {DIMENSIONS} or MOS-only models, not outputs {model.output_names}"
        )
    inverse = [
        (r"^cnn\.", "cnn.model."),
        (r"^proj\.", "time_dependency.model.linear."),
        (r"^norm\.", "time_dependency.model.norm1."),
        (
            r"^encoder\.layers\.(\d+)\.self_attn\.qkv_proj\.",
            r"time_dependency.model.layers.\1.self_attn.in_proj_",
        ),
        (
            r"^encoder\.layers\.(\d+)\.self_attn\.out_proj\.",
            r"time_dependency.model.layers.\1.self_attn.out_proj.",
        ),
        (r"^encoder\.layers\.(\d+)\.ffn\.linear(\d)\.", r"time_dependency.model.layers.\1.linear\2."),
        (r"^encoder\.layers\.(\d+)\.norm(\d)\.", r"time_dependency.model.layers.\1.norm\2."),
        (r"^heads\.(\d+)\.", r"pool_layers.\1.model." if len(model.output_names) > 1 else "pool.model."),
    ]
    state: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        for pat, rep in inverse:
            new, n = re.subn(pat, rep, key)
            if n:
                state[new] = value.detach().cpu().clone()
                break
        else:
            raise CheckpointError(f"no original name for parameter {key!r}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"args": _args_for(model, features or NISQAFeatures()), "model_state_dict": state}, out)
    return out
