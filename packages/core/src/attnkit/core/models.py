"""The model registry, and checkpoints back to plain ``nn.Module``s.

Every attnkit model is registered with a :class:`ModelInfo` (name, paper, domain, default config) by its
domain package, so ``attnkit models`` can list them and one test can run over all of them. Listing imports
no model code: classes are named by import path and loaded on demand.

A model class decorated with :func:`configurable` remembers the arguments it was built with; a task saves
them in its checkpoints (``checkpoint["attnkit"]["model"]``), and :func:`load_model` rebuilds the bare
model from any such checkpoint with ``torch.load(weights_only=True)``::

    from attnkit.core.models import load_model
    model = load_model("runs/sasrec-games/checkpoints/best.ckpt")   # an nn.Module in eval mode
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "TRUSTED_MODULE_PREFIXES",
    "ModelInfo",
    "build_model",
    "configurable",
    "get_model_info",
    "load_model",
    "model_spec",
    "register_model",
    "registered_models",
]

#: Modules whose classes :func:`build_model` instantiates from a checkpoint without being told to trust them.
TRUSTED_MODULE_PREFIXES: tuple[str, ...] = ("attnkit.", "segmentation_models_pytorch.", "timm.", "torch.nn.")

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class ModelInfo:
    """What ``attnkit models`` shows of a model, and how the registry test builds a tiny one.

    Args:
        name: short name (``sasrec``).
        class_path: import path of the ``nn.Module`` (``attnkit.recsys.SASRec``).
        domain: ``core``, ``recsys``, ``timeseries``, ``vision`` or ``audio``.
        paper: citation of the paper the model follows.
        config: the packaged config that trains it (``attnkit fit -c <config>``), if any.
        example: ``"module:function"`` returning ``(model, inputs)``: a tiny model and a tuple of inputs
            for its ``forward``; used by the registry test (forward, backward, state-dict round trip, export).
        export: the export formats the model supports (``"torchscript"``, ``"onnx"``).
        notes: one line on deviations from the paper, if any.
    """

    name: str
    class_path: str
    domain: str
    paper: str
    config: str | None = None
    example: str | None = None
    export: tuple[str, ...] = field(default_factory=tuple)
    notes: str = ""

    def load_class(self) -> type:
        """Import and return the model class."""
        return _import(self.class_path)

    def build_example(self) -> tuple[nn.Module, tuple[Any, ...]]:
        """The tiny model and inputs of :attr:`example`."""
        if self.example is None:
            raise ValueError(f"model {self.name!r} registers no example")
        return _import(self.example)()


_MODELS: dict[str, ModelInfo] = {}


def register_model(info: ModelInfo) -> ModelInfo:
    """Add a model to the registry (a second registration with the same name replaces the first)."""
    _MODELS[info.name] = info
    return info


def registered_models() -> list[ModelInfo]:
    """Every registered model, by domain then name (import the domain packages first: ``attnkit.core.cli.discover``)."""
    return sorted(_MODELS.values(), key=lambda m: (m.domain, m.name))


def get_model_info(name: str) -> ModelInfo:
    """The registry entry ``name``; the error lists the registered names."""
    try:
        return _MODELS[name]
    except KeyError:
        known = ", ".join(sorted(_MODELS)) or "none (import the domain packages first)"
        raise KeyError(f"no model named {name!r}; registered: {known}") from None


def _import(path: str) -> Any:
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


_PLAIN = (str, int, float, bool, type(None))


def _plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def configurable(cls: T) -> T:
    """Class decorator: instances remember their constructor arguments for :func:`model_spec`.

    The class also gains ``from_checkpoint(path)`` (unless it defines one): the model of an ``attnkit fit``
    checkpoint, weights only (``SASRec.from_checkpoint("runs/sasrec-games/checkpoints/best.ckpt")``).

    Only plain values (numbers, strings, ``None`` and lists/dicts of them) are recorded; a model built with
    anything else (a module, a tensor) has no spec and must be rebuilt by hand before loading weights.
    """
    init = cls.__init__  # type: ignore[misc]  # the class's own __init__, wrapped below
    sig = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values: dict[str, Any] = {}
        for name, param in list(sig.parameters.items())[1:]:
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                values.update(bound.arguments.get(name, {}))
            elif param.kind is not inspect.Parameter.VAR_POSITIONAL:
                values[name] = bound.arguments[name]
        spec = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": values}
        # The outermost decorated class finishes last and wins; record only when it is the instance's class.
        if type(self) is cls:
            object.__setattr__(self, "_attnkit_spec", spec if _plain(values) else None)

    cls.__init__ = __init__  # type: ignore[misc]
    if "from_checkpoint" not in vars(cls):
        cls.from_checkpoint = classmethod(_from_checkpoint)  # type: ignore[attr-defined]
    return cls


def _from_checkpoint(cls: type, checkpoint: str | Path, map_location: str = "cpu", strict: bool = True) -> Any:
    """Load this model from a checkpoint written by ``attnkit fit`` (weights only), in eval mode."""
    model = load_model(checkpoint, map_location=map_location, strict=strict)
    if not isinstance(model, cls):
        raise ValueError(f"{checkpoint} holds a {type(model).__name__}, not a {cls.__name__}; "
                         "use attnkit.core.models.load_model to load whatever it holds")
    return model


def model_spec(model: nn.Module) -> dict[str, Any] | None:
    """``{"class_path", "init_args"}`` that rebuilds ``model``'s architecture, or ``None`` when unknown.

    Known for :func:`configurable` attnkit models and for segmentation-models-pytorch models (which keep
    their own constructor config).
    """
    spec = getattr(model, "_attnkit_spec", None)
    if isinstance(spec, dict):
        return {"class_path": spec["class_path"], "init_args": dict(spec["init_args"])}
    hub = getattr(model, "_hub_mixin_config", None)
    if isinstance(hub, Mapping) and type(model).__module__.startswith("segmentation_models_pytorch"):
        cls = type(model)
        args = {k: v for k, v in hub.items() if _plain(v)}
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": args}
    return None


def build_model(spec: Mapping[str, Any], trusted: Iterable[str] = ()) -> nn.Module:
    """Instantiate ``{"class_path", "init_args"}`` (nested specs are built too).

    Args:
        spec: what :func:`model_spec` returned (or a LightningCLI ``class_path``/``init_args`` mapping).
        trusted: extra module prefixes whose classes may be instantiated; attnkit, smp, timm and ``torch.nn``
            are trusted already. A checkpoint naming any other class is refused, so loading a checkpoint
            never runs code that was not asked for.

    Raises:
        ValueError: the spec is malformed or names an untrusted class.

    """
    from torch import nn

    def build(value: Any) -> Any:
        if isinstance(value, Mapping) and "class_path" in value:
            path = str(value["class_path"])
            prefixes = (*TRUSTED_MODULE_PREFIXES, *trusted)
            if not path.startswith(prefixes):
                raise ValueError(
                    f"the checkpoint asks for class {path!r}, which is not from a trusted module "
                    f"({', '.join(prefixes)}); if you trust it, pass trusted=[{path.rsplit('.', 1)[0]!r}]"
                )
            kwargs = {k: build(v) for k, v in dict(value.get("init_args") or {}).items()}
            return _import(path)(**kwargs)
        if isinstance(value, list):
            return [build(v) for v in value]
        return value

    model = build(spec)
    if not isinstance(model, nn.Module):
        raise ValueError(f"the model spec built a {type(model).__name__}, not an nn.Module: {dict(spec)}")
    return model


def checkpoint_model_spec(checkpoint: Mapping[str, Any]) -> dict[str, Any] | None:
    """The model spec stored in a loaded checkpoint by :class:`attnkit.core.tasks.Task`, or ``None``."""
    meta = checkpoint.get("attnkit")
    if isinstance(meta, Mapping) and isinstance(meta.get("model"), Mapping):
        return dict(meta["model"])
    return None


def load_model(
    checkpoint: str | Path | Mapping[str, Any],
    *,
    map_location: str = "cpu",
    strict: bool = True,
    trusted: Iterable[str] = (),
) -> nn.Module:
    """Rebuild the bare model of an attnkit checkpoint (weights only), in eval mode.

    Args:
        checkpoint: a ``.ckpt`` written by ``attnkit fit`` (or any :class:`~attnkit.core.tasks.Task`), or the
            dictionary ``torch.load`` returned for it.
        map_location: where to load tensors.
        strict: require the weights to match the architecture exactly.
        trusted: extra module prefixes for :func:`build_model`.

    Raises:
        CheckpointNotFoundError: no such file (a ``FileNotFoundError``).
        CheckpointError: the file is truncated or not a checkpoint.
        ValueError: the checkpoint holds no model spec (written before attnkit stored one, or by a model
            that is not :func:`configurable`): build the model yourself and load ``state_dict`` entries
            that start with ``model.``.

    """
    ckpt = _read_checkpoint(checkpoint, map_location)
    spec = checkpoint_model_spec(ckpt)
    name = checkpoint if not isinstance(checkpoint, Mapping) else "the checkpoint"
    if spec is None:
        raise ValueError(
            f"{name} stores no model spec (no 'attnkit' entry): it was not written by an attnkit task, or by "
            "one whose model records no constructor arguments; build the model yourself and load the "
            "'model.'-prefixed entries of its state_dict"
        )
    model = build_model(spec, trusted)
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state, strict=strict)
    return model.eval()


def _read_checkpoint(checkpoint: str | Path | Mapping[str, Any], map_location: str) -> Mapping[str, Any]:
    if isinstance(checkpoint, Mapping):
        return checkpoint
    from attnkit.core.io import load_checkpoint

    return load_checkpoint(checkpoint, map_location=map_location)  # errors name the file and the fix
