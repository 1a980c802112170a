"""``cnnzoo.create_model``: a zoo model, with random or pretrained weights.

    model = cnnzoo.create_model("resnet50", weights="imagenet")        # torchvision's DEFAULT, from the store
    model = cnnzoo.create_model("resnet18", weights="imagenet:v1", num_classes=5)   # new head for 5 classes
    model = cnnzoo.create_model("resnet18", weights="resnet18-f37072fd.pth")        # a local file
    model = cnnzoo.create_model("resnet18", weights=ResNet18_Weights.DEFAULT)       # torchvision's spelling
    model = cnnzoo.create_model("resnet18", pretrained=True)                        # timm's spelling

This sits above both :mod:`cnnzoo.models` (the registry, which knows nothing of weights) and
:mod:`cnnzoo.weights` (which builds models to check files against): the registry never imports weights.
"""

from __future__ import annotations

import torch
from torch import nn

from .card import attach_card
from .errors import CnnzooError, ShapeError
from .models import create_model as build
from .models import get_model_info
from .models.source import resolve_model
from .weights import resolve
from .weights.files import Progress

__all__ = ["create_model", "weights_spec"]


def create_model(
    name: str,
    num_classes: int | None = None,
    in_channels: int | None = None,
    *,
    weights=None,
    pretrained: bool = False,
    seed: int | None = None,
    offline: bool | None = None,
    progress: Progress | None = None,
    **overrides,
) -> nn.Module:
    """Build a registered model (:func:`cnnzoo.models.create_model`); with ``weights`` (``"imagenet"``,
    ``"imagenet:v2"`` or a ``.pth``/``.safetensors`` file) load them (:func:`cnnzoo.weights.resolve`:
    from the store, fetched unless ``offline``, checked) and attach the weights' card: their classes,
    mean/std, crop size as the input size and the resize before the crop, and where they came from
    (``card.pretrained``).

    ``num_classes`` other than the weights' replaces the classifier after loading (a new, random head to
    fine-tune). ``input_size`` changes only the size images are cropped to (the resize scales with it): the
    network is built as the weights were trained, so they always fit.

    ``weights`` may also be written as torchvision writes it: a ``Weights`` enum member
    (``ResNet18_Weights.DEFAULT``) or its string (``"ResNet18_Weights.IMAGENET1K_V1"``, ``"DEFAULT"``);
    ``pretrained=True`` (timm's spelling) is ``weights="imagenet"``. A file whose classifier has another
    number of classes loads with that ``num_classes``. ``seed`` makes the random initial weights repeat,
    whatever the global random state (which it leaves as it was)."""
    if pretrained and weights is None:
        weights = "imagenet"
    if weights is None:  # a zoo name, a layer string, FILE.py:NAME, torchvision:NAME or timm:NAME
        if seed is None:
            return resolve_model(name, num_classes, in_channels, **overrides)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return resolve_model(name, num_classes, in_channels, **overrides)
    weights = weights_spec(name, weights)
    if in_channels not in (None, 3):
        raise ShapeError(
            f"{name}'s {weights} weights take 3-channel (RGB) images, not in_channels={in_channels}"
        )
    size = overrides.pop("input_size", None)
    state, card = resolve(name, weights, offline=offline, progress=progress, num_classes=num_classes)
    trained_classes = int(_head_rows(state))  # a fine-tuned file's own head, else the publisher's 1000
    model = build(name, trained_classes, **overrides)
    model.load_state_dict(state, strict=True)  # resolve checked names and shapes against this very build
    wcard = card.model_card(model.card)
    pre = card.preprocessing
    built = tuple(wcard.input_size[1:])
    kwargs = wcard.model_kwargs | {"input_size": list(get_model_info(name).input_size[1:])}
    changes: dict = {"model_kwargs": kwargs, "pretrained": _provenance(card, weights)}
    if pre is not None:
        changes["resize"] = pre.resize_size
    if card.categories and len(card.categories) != trained_classes:  # a fine-tuned head: its classes unnamed
        changes |= {"classes": tuple(str(i) for i in range(trained_classes)), "dataset": ""}
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else tuple(size)[-2:]
        changes["input_size"] = (3, h, w)
        if pre is not None:  # the same share of the image: 224 of 256 -> 64 of 73
            changes["resize"] = max(h, w, round(pre.resize_size * max(h, w) / max(built)))
    if num_classes is not None and num_classes != trained_classes:
        model.reset_classifier(num_classes)
        kwargs["num_classes"] = num_classes
        changes |= {"classes": (), "dataset": ""}
    return attach_card(model, wcard.replace(**changes))


def weights_spec(name: str, weights) -> str:
    """cnnzoo's spelling of ``weights``: a torchvision ``WeightsEnum`` member or its name
    (``"ResNet18_Weights.IMAGENET1K_V1"``, ``"IMAGENET1K_V1"``, ``"DEFAULT"``) becomes ``imagenet:v1``;
    ``imagenet``, ``imagenet:VERSION`` and file paths stay as they are."""
    from .weights.catalogue import entries

    if isinstance(weights, (str, bytes)) and not isinstance(weights, str):
        weights = weights.decode()
    if not isinstance(weights, str):
        enum_type = type(weights).__name__
        member = getattr(weights, "name", None)
        if member is None or not enum_type.endswith("_Weights"):
            raise CnnzooError(
                f"weights must be a name, a file or a torchvision Weights member, got {weights!r}"[:200]
            )
        weights = f"{enum_type}.{member}"
    text = weights.strip()
    enum_type, dot, member = text.rpartition(".")
    if not dot and text.isupper():  # "DEFAULT", "IMAGENET1K_V1"
        enum_type, member = "", text
    elif not (dot and enum_type.endswith("_Weights")):
        return weights
    found = entries(name)
    if enum_type and not any(e.enum.split(".")[0] == enum_type for e in found):
        raise CnnzooError(f"{text} are not {name}'s weights (its are {found[0].enum.split('.')[0]})")
    if member == "DEFAULT":
        return "imagenet"
    match = next((e for e in found if e.enum.split(".")[1] == member), None)
    if match is None:
        raise CnnzooError(f"{name} has no {member} weights; it has {', '.join(e.enum for e in found)}"[:200])
    return f"imagenet:{match.version}"


def _head_rows(state: dict) -> int:
    """The class count of a state dict without categories: the rows of its last 2-D tensor (the classifier)."""
    return next(t.shape[0] for t in reversed(list(state.values())) if t.ndim == 2)


def _provenance(card, weights: str) -> dict:
    """What the run directory and checkpoint record of the weights a model started from. ``spec`` rebuilds
    it (a stored version, pinned even when the user wrote ``imagenet``; else the file's path)."""
    stored = weights in ("imagenet", "default") or weights.startswith("imagenet:")
    return {
        "model": card.model,
        "version": card.version,
        "publisher": card.publisher,
        "sha256": card.sha256,
        "verified": card.verified,
        "source": card.source,
        "spec": card.version if stored else card.source,
    }
