"""The model registry: a plain table, in the style of torchvision's ``_api.py``.

Builders are plain functions ``builder(num_classes=..., in_channels=..., **overrides) -> nn.Module``
decorated with :func:`register_model` in their family's module (``cnnzoo/models/<family>.py``). Each entry
records the input size the network is built for and, once, the figures its sources publish
(:class:`Published`), which the tests check and ``cnnzoo models`` shows. This module imports no model:
``cnnzoo.models`` imports the families, whose decorators fill the table.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..card import ModelCard, attach_card
from ..errors import UnknownModelError

__all__ = ["ModelInfo", "Published", "register_model", "create_model", "list_models", "get_model_info"]


@dataclass(frozen=True)
class Published:
    """What a network's sources state about it, written here once: the tests compare cnnzoo's own counts with
    these numbers, and ``cnnzoo models`` shows them labelled with ``source``, never as cnnzoo's results."""

    source: str  # who states the figures, e.g. "He et al. 2015, Table 6" or "torchvision"
    params: int | None = None  # all parameters, fixed ones included
    trainable_params: int | None = None
    connections: int | None = None  # LeCun's count (1998 paper)
    gmacs: float | None = None  # multiply-accumulates at the default input, in G (torchvision's `_ops`)
    error: str = ""  # test error as the paper reports it, e.g. "8.75% test error on CIFAR-10"

    def describe(self) -> str:
        """One line, the source first: ``He et al. 2015, Table 6 (...): 8.75% test error on CIFAR-10, ...``."""
        figures = [self.error] if self.error else []
        if self.params is not None:
            trainable = self.trainable_params
            figures.append(f"{self.params:,} params" + (f" ({trainable:,} trainable)" if trainable else ""))
        if self.connections is not None:
            figures.append(f"{self.connections:,} connections")
        if self.gmacs is not None:
            figures.append(f"{self.gmacs} G MACs")
        return f"{self.source}: {', '.join(figures)}"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., nn.Module]
    input_size: tuple[int, int, int]  # (C, H, W) the paper uses
    family: str
    paper: str
    num_classes: int
    published: Published | None = None

    @property
    def description(self) -> str:
        """The docstring's first paragraph, on one line (a sentence may span several source lines)."""
        doc = (self.builder.__doc__ or "").strip()
        return " ".join(doc.split("\n\n")[0].split())


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str | None = None,
    *,
    input_size: tuple[int, int, int],
    family: str,
    paper: str = "",
    num_classes: int = 10,
    published: Published | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder`` under ``name`` (default: the function's name). Duplicates are an error."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _REGISTRY:
            owner = _REGISTRY[key].builder.__module__
            raise ValueError(f"model {key!r} is already registered (by {owner})")
        _REGISTRY[key] = ModelInfo(key, builder, tuple(input_size), family, paper, num_classes, published)
        return builder

    return wrap


def get_model_info(name: str) -> ModelInfo:
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
    names = sorted(_REGISTRY)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def create_model(
    name: str,
    num_classes: int | None = None,
    in_channels: int | None = None,
    **overrides,
) -> nn.Module:
    """Build a registered model. ``num_classes``/``in_channels`` are passed only when given, so each
    builder keeps its paper's defaults. The model gets its :class:`~cnnzoo.card.ModelCard` (``model.card``):
    its name, the keyword arguments it was built with and the (C, H, W) input it takes."""
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
    card = ModelCard(model=info.name, model_kwargs=kwargs, input_size=(in_channels or c, h, w))
    return attach_card(model, card)
