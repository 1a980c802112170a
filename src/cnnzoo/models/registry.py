"""A tiny model registry in the style of torchvision's ``_api.py``.

Builders are plain functions ``builder(num_classes=..., in_channels=..., **overrides) -> nn.Module``
decorated with :func:`register_model`. Each entry records the paper's default input size, so tools
(analyzer, trainer, web app) know what the network expects without running it.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .errors import UnknownModelError

__all__ = ["ModelInfo", "register_model", "create_model", "list_models", "get_model_info"]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., nn.Module]
    input_size: tuple[int, int, int]  # (C, H, W) the paper uses
    family: str
    paper: str
    num_classes: int

    @property
    def description(self) -> str:
        doc = (self.builder.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str | None = None,
    *,
    input_size: tuple[int, int, int],
    family: str,
    paper: str = "",
    num_classes: int = 10,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder`` under ``name`` (default: the function's name). Duplicates are an error."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is already registered (by {_REGISTRY[key].builder.__module__})")
        _REGISTRY[key] = ModelInfo(key, builder, tuple(input_size), family, paper, num_classes)
        return builder

    return wrap


_loaded = False


def _load_zoo() -> None:
    """Import the model modules once, so their decorators run."""
    global _loaded
    if not _loaded:
        _loaded = True
        importlib.import_module("cnnzoo.models")


def get_model_info(name: str) -> ModelInfo:
    _load_zoo()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
        if not close:  # prefix matches help for e.g. "vgg" or "resnet"
            close = [k for k in sorted(_REGISTRY) if k.startswith(name.lower()[:3])][:3]
        hint = f" — did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}{hint} (`cnnzoo models` lists all {len(_REGISTRY)})"
        ) from None


def list_models(pattern: str | None = None) -> list[str]:
    """Registered names, sorted; ``pattern`` is a shell glob such as ``"vgg*"``."""
    _load_zoo()
    names = sorted(_REGISTRY)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def create_model(
    name: str,
    num_classes: int | None = None,
    in_channels: int | None = None,
    **overrides,
) -> nn.Module:
    """Build a registered model. ``num_classes``/``in_channels`` are passed only when given, so each
    builder keeps its paper's defaults. The model gets ``default_input_size`` (C, H, W), ``model_name``
    and ``model_kwargs`` attributes, which the analyzer, trainer, checkpoints and web app read."""
    info = get_model_info(name)
    kwargs = dict(overrides)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_channels is not None:
        kwargs["in_channels"] = in_channels
    model = info.builder(**kwargs)
    c, h, w = info.input_size
    if "input_size" in overrides:
        size = overrides["input_size"]
        h, w = (size, size) if isinstance(size, int) else tuple(size)[-2:]
    model.default_input_size = (in_channels or c, h, w)
    model.model_name = name
    model.model_kwargs = kwargs  # how to rebuild it; checkpoints store this
    return model
