"""One model argument for every command and function: what ``MODEL`` may be, and how to rebuild it.

- a zoo name: ``lenet5``, ``vgg16`` (:func:`cnnzoo.models.create_model`);
- a layer string: ``1x28x28-32C3-MP2-64C3-MP2-128C3-MP2-64N-10N`` (:mod:`cnnzoo.models.layerstring`);
- ``path/to/file.py:Name``: a class, a function returning a module, or a module instance in the user's own
  file, called with ``model_args``. Running it runs the user's code, so it is allowed only where the caller
  says so (the command line and Python; never the web app);
- ``torchvision:NAME`` and ``timm:NAME`` (timm only where it is installed).

:class:`ModelSource` is the serialisable record of the last three kinds (the card's ``source``): a run
directory rebuilds its model from it, refusing a file that changed or vanished since.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..card import ModelCard, attach_card, card_of
from ..errors import CnnzooError, UnknownModelError
from .layerstring import build_from_spec, is_layer_string, parse_layer_string
from .registry import create_model, get_model_info

__all__ = [
    "ModelSource",
    "model_source",
    "resolve_model",
    "rebuild_model",
    "check_model_arg",
    "default_input_size",
    "CODE_KINDS",
]

CODE_KINDS = ("file", "torchvision", "timm")  # kinds that run code other than cnnzoo's: never over the web


@dataclass(frozen=True)
class ModelSource:
    """What a model argument names. ``kind``: zoo | string | file | torchvision | timm."""

    kind: str
    name: str  # the zoo name, the layer string, the class/function/instance name, or torchvision/timm's name
    path: str = ""  # file: the absolute path of the .py file
    args: dict = field(default_factory=dict, hash=False)  # file/torchvision/timm: the keyword arguments
    sha256: str = ""  # file: of its source when the model was built

    def __str__(self) -> str:
        if self.kind == "file":
            return f"{self.path}:{self.name}"
        return f"{self.kind}:{self.name}" if self.kind in ("torchvision", "timm") else self.name

    def to_dict(self) -> dict:
        record = {"kind": self.kind, "name": self.name, "args": dict(self.args)}
        return record | ({"path": self.path, "sha256": self.sha256} if self.kind == "file" else {})

    @classmethod
    def from_dict(cls, d: dict) -> ModelSource:
        ok = isinstance(d, dict) and d.get("kind") in CODE_KINDS and isinstance(d.get("name"), str)
        if not ok or not isinstance(d.get("args", {}), dict):
            raise CnnzooError(
                f"a model source must be {{'kind': file|torchvision|timm, 'name', 'args'}}, not {d!r}"[:200]
            )
        return cls(
            d["kind"], d["name"], str(d.get("path", "")), dict(d.get("args", {})), str(d.get("sha256", ""))
        )


def model_source(arg: str) -> ModelSource:
    """Which kind of model ``arg`` names (nothing is loaded or built)."""
    if not isinstance(arg, str) or not arg.strip():
        raise UnknownModelError(
            f"a model must be a name, a layer string, FILE.py:NAME or torchvision:NAME, not {arg!r}"
        )
    text = arg.strip()
    if is_layer_string(text):
        return ModelSource("string", text)
    for kind in ("torchvision", "timm"):
        if text.startswith(kind + ":"):
            return ModelSource(kind, text[len(kind) + 1 :])
    path, sep, name = text.rpartition(":")
    if sep and path.endswith(".py"):
        return ModelSource("file", name, path=path)
    return ModelSource("zoo", text)


def check_model_arg(arg: str, allow_code: bool = True) -> ModelSource:
    """The source of ``arg``, checked without building anything big: an unknown zoo name or a bad layer
    string fails here in one line; ``allow_code=False`` (the web app) refuses files, torchvision and timm."""
    source = model_source(arg)
    if source.kind in CODE_KINDS and not allow_code:
        raise CnnzooError(
            f"{arg}: only zoo names and layer strings are accepted here (code is never loaded over the web)"
        )
    if source.kind == "zoo":
        get_model_info(source.name)
    elif source.kind == "string":
        parse_layer_string(source.name)
    return source


def default_input_size(arg: str, allow_code: bool = False) -> tuple[int, int, int]:
    """The (C, H, W) a zoo name or a layer string is built for (files and libraries: only when built)."""
    source = check_model_arg(arg, allow_code)
    if source.kind == "zoo":
        return tuple(get_model_info(source.name).input_size)
    if source.kind == "string":
        return parse_layer_string(source.name).input
    raise CnnzooError(f"{arg}: give the input size (--input CxHxW)")


def _size(input_size, in_channels: int | None) -> tuple | None:
    """(C, H, W), (H, W) or an int side, as given; None if not."""
    if input_size is None:
        return None
    if isinstance(input_size, int):
        return (input_size, input_size)
    size = tuple(int(v) for v in input_size)
    return size if len(size) == 3 else size[-2:]


def _string_model(text: str, num_classes, in_channels, input_size) -> nn.Module:
    spec = parse_layer_string(text)
    c, h, w = spec.input
    size = _size(input_size, in_channels)
    if size is not None:
        c, (h, w) = (size[0], size[1:]) if len(size) == 3 else (c, size)
    c = in_channels or c
    if (c, h, w) != spec.input:
        rest = spec.text.split("-", 1)[1]
        spec = parse_layer_string(f"{c}x{h}x{w}-{rest}")
    return build_from_spec(spec, num_classes)


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_file(source: ModelSource, extra: dict) -> tuple[nn.Module, dict]:
    """The module the file names, and the arguments it was called with (``extra``: num_classes/in_channels,
    passed where the class or function takes them and the user did not give them)."""
    path = Path(source.path)
    if not path.is_file():
        raise CnnzooError(f"{path}: no such file (the model file is gone)")
    digest = _sha256(path)
    if source.sha256 and digest != source.sha256:
        raise CnnzooError(
            f"{path}: the file changed since this model was saved (sha256 differs); restore it or retrain"
        )
    spec = importlib.util.spec_from_file_location(f"cnnzoo_user_{digest[:12]}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 — the user's code: any error is theirs, said in one line
        raise CnnzooError(
            f"{path}: running it failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    target = getattr(module, source.name, None)
    if target is None:
        found = sorted(
            n
            for n, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__
        )
        hint = f" (it defines {', '.join(found)})" if found else ""
        raise CnnzooError(f"{path}: has no {source.name!r}{hint}")
    if isinstance(target, nn.Module):
        if source.args:
            raise CnnzooError(f"{path}:{source.name} is a module instance: it takes no --model-args")
        return target, {}
    if not callable(target):
        raise CnnzooError(
            f"{path}:{source.name} is a {type(target).__name__}, not a module, class or function"
        )
    args = dict(source.args)
    for key, value in extra.items():
        if value is not None and _accepts(target, key):
            args.setdefault(key, value)
    try:
        model = target(**args)
    except TypeError as e:
        raise CnnzooError(f"{path}:{source.name}(**{json.dumps(args)}): {e}") from None
    if not isinstance(model, nn.Module):
        raise CnnzooError(f"{path}:{source.name} returned a {type(model).__name__}, not an nn.Module")
    return model, args


def _load_library(source: ModelSource) -> nn.Module:
    if source.kind == "torchvision":
        import torchvision

        if source.name not in torchvision.models.list_models():
            raise UnknownModelError(
                f"torchvision has no model {source.name!r} (torchvision.models.list_models())"
            )
        return torchvision.models.get_model(source.name, **source.args)
    try:
        import timm
    except ImportError:
        raise CnnzooError("timm:NAME needs timm, which is not installed (pip install timm)") from None
    if not timm.is_model(source.name):
        raise UnknownModelError(f"timm has no model {source.name!r} (timm.list_models())")
    return timm.create_model(source.name, pretrained=False, **source.args)


def _code_model(source: ModelSource, num_classes, in_channels, input_size) -> nn.Module:
    args = dict(source.args)
    if source.kind == "file":
        path = Path(source.path).resolve()
        source = ModelSource("file", source.name, str(path), args, source.sha256)
        model, args = _load_file(source, {"num_classes": num_classes, "in_channels": in_channels})
        source = ModelSource("file", source.name, str(path), args, source.sha256 or _sha256(path))
    else:
        if num_classes is not None:
            args.setdefault("num_classes", num_classes)
        if in_channels not in (None, 3):
            if source.kind == "torchvision":
                raise CnnzooError(
                    f"torchvision:{source.name} takes 3-channel images, not in_channels={in_channels}"
                )
            args.setdefault("in_chans", in_channels)
        source = ModelSource(source.kind, source.name, args=args)
        model = _load_library(source)
    card = card_of(model)
    size = _size(input_size, in_channels)
    if size is None and card is not None:
        size = card.input_size
    if size is None and source.kind == "timm":
        size = tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))
    if size is None and source.kind == "torchvision":
        size = (3, 224, 224)  # torchvision's classifiers are published at 224×224 (their weights' crop)
    if size is not None and len(size) == 2:
        first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        size = (in_channels or getattr(first, "in_channels", None) or 3, *size)
    model.model_source = source.to_dict()  # read by fit when it writes the card of a model without one
    model.model_name = str(source)
    if size is None:
        return model  # no input size known: commands that need one ask for --input
    base = card or ModelCard(model=str(source), input_size=size)
    return attach_card(model, base.replace(model=str(source), input_size=size, source=source.to_dict()))


def resolve_model(
    arg: str | ModelSource,
    num_classes: int | None = None,
    in_channels: int | None = None,
    *,
    model_args: dict | None = None,
    allow_code: bool = True,
    **overrides,
) -> nn.Module:
    """Build the model ``arg`` names, with its card (whose ``source`` rebuilds a file/torchvision/timm model).

    ``num_classes`` sets the last layer's width (a layer string's last ``kN``; passed to a builder that takes
    it); ``in_channels`` and ``input_size`` ((C, H, W) or (H, W)) the input; ``model_args`` are the keyword
    arguments of a file's class or function (``--model-args``) or of torchvision's/timm's builder."""
    source = arg if isinstance(arg, ModelSource) else check_model_arg(arg, allow_code)
    if source.kind in CODE_KINDS and not allow_code:
        raise CnnzooError(f"{source}: only zoo names and layer strings are accepted here")
    if model_args:
        source = ModelSource(
            source.kind, source.name, source.path, {**source.args, **model_args}, source.sha256
        )
    if source.kind == "zoo":
        if model_args:
            overrides = {**model_args, **overrides}
        return create_model(source.name, num_classes, in_channels, **overrides)
    input_size = overrides.pop("input_size", None)
    if overrides:
        raise CnnzooError(f"{source}: unexpected options {', '.join(sorted(overrides))}")
    if source.kind == "string":
        return _string_model(source.name, num_classes, in_channels, input_size)
    return _code_model(source, num_classes, in_channels, input_size)


def rebuild_model(card: ModelCard) -> nn.Module:
    """The model a card describes (a checkpoint's), built again: from its ``source`` where it has one (a
    changed or vanished file is a one-line error), else from its name and keyword arguments."""
    if card.source:
        source = ModelSource.from_dict(card.source)
        model = _code_model(source, None, None, card.input_size)
        return model
    return resolve_model(card.model, **card.model_kwargs)
