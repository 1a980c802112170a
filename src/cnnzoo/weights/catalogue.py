"""The pretrained weights cnnzoo knows: torchvision's own ``Weights`` enums, read at run time, never retyped.

The zoo keeps torchvision's layer names, so every zoo model that torchvision also builds under the same name
(alexnet, vgg11 … vgg19_bn, resnet18 … resnet152) takes torchvision's ImageNet weights as they are. Each
member of the model's enum becomes a :class:`WeightsEntry`: URL, the SHA-256 prefix in the file name (what
``torch.hub``'s ``check_hash`` compares), categories, the published figures and the preprocessing.

Version names: ``imagenet`` is torchvision's ``DEFAULT``; ``imagenet:v1``, ``imagenet:v2`` and
``imagenet:features`` are ``IMAGENET1K_V1``, ``IMAGENET1K_V2`` and ``IMAGENET1K_FEATURES``. The figures are
the publisher's, never cnnzoo's measurements: :meth:`WeightsEntry.published` labels them so.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import UnknownModelError
from ..models import get_model_info, list_models

__all__ = [
    "PUBLISHER",
    "USER",
    "user_entry",
    "Preprocessing",
    "WeightsEntry",
    "catalogue",
    "entries",
    "lookup",
    "split_spec",
    "override",
]

PUBLISHER = "torchvision"
USER = "you"  # the publisher of a version imported as the user's own
TERMS = "the weights are torchvision's, under their publisher's terms (see docs/weights.md)"
_ENUM_PREFIX = "IMAGENET1K_"


@dataclass(frozen=True)
class Preprocessing:
    """What the publisher's evaluation did to an image: resize the short side, centre-crop, normalise."""

    resize_size: int
    crop_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"

    def to_dict(self) -> dict:
        return {
            "resize_size": self.resize_size,
            "crop_size": self.crop_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        return cls(
            int(d["resize_size"]),
            int(d["crop_size"]),
            tuple(float(v) for v in d["mean"]),
            tuple(float(v) for v in d["std"]),
            str(d.get("interpolation", "bilinear")),
        )


@dataclass(frozen=True)
class WeightsEntry:
    model: str  # zoo (= torchvision) model name
    version: str  # "v1", "v2", "features": the enum member's name without "IMAGENET1K_", lower case
    enum: str  # "ResNet50_Weights.IMAGENET1K_V2"
    default: bool  # torchvision's DEFAULT for this model
    url: str
    sha256_prefix: str  # the hex in the file name; the file's SHA-256 must start with it
    categories: tuple[str, ...]  # () where the publisher gives none (vgg16's features-only weights)
    metrics: dict = field(hash=False)  # meta["_metrics"]: {"ImageNet-1K": {"acc@1": 76.13, "acc@5": 92.862}}
    ops_gflops: float = 0.0  # meta["_ops"]
    file_size_mb: float = 0.0  # meta["_file_size"]
    num_params: int = 0
    recipe: str = ""
    preprocessing: Preprocessing | None = None
    user: bool = False  # a version of the user's own (``cnnzoo weights import resnet18:mine FILE``)

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def spec(self) -> str:
        """The version as users write it: ``imagenet:v2`` (a user's own: its name, ``mine``)."""
        return self.version if self.user else f"imagenet:{self.version}"

    def published(self) -> str:
        """The accuracy as the publisher states it, labelled: ``torchvision: acc@1 76.13%, acc@5 92.862%``."""
        if self.user:
            return "yours: no published accuracy"
        parts = []
        for dataset, figures in self.metrics.items():
            shown = [
                f"{k} {v:g}%" for k, v in figures.items() if isinstance(v, (int, float)) and math.isfinite(v)
            ]
            parts.append(
                f"{', '.join(shown)} on {dataset}" if shown else f"no accuracy published on {dataset}"
            )
        return f"{PUBLISHER}: {'; '.join(parts) or 'no accuracy published'}"

    def to_dict(self, categories: bool = False) -> dict:
        """JSON form. NaN (the publisher's "not measured") becomes null; the category list only on request."""
        metrics = {
            ds: {
                k: (v if isinstance(v, (int, float)) and math.isfinite(v) else None) for k, v in figs.items()
            }
            for ds, figs in self.metrics.items()
        }
        out = {
            "model": self.model,
            "version": self.spec,
            "default": self.default,
            "publisher": USER if self.user else PUBLISHER,
            "enum": self.enum,
            "url": self.url,
            "file": self.file_name,
            "sha256_prefix": self.sha256_prefix,
            "published_metrics": metrics,
            "ops_gflops": self.ops_gflops,
            "file_size_mb": self.file_size_mb,
            "num_params": self.num_params,
            "recipe": self.recipe,
            "num_categories": len(self.categories),
            "preprocessing": self.preprocessing.to_dict() if self.preprocessing else None,
        }
        if categories:
            out["categories"] = list(self.categories)
        return out


def _preprocessing(weights) -> Preprocessing | None:
    # The instance that .transforms() builds holds the values after its defaults are applied, which the
    # partial's keywords alone do not (resize_size is often left at its default, 256).
    try:
        t = weights.transforms()
    except Exception:  # a future enum whose transforms need arguments: no preprocessing rather than a crash
        return None
    values = [getattr(t, k, None) for k in ("resize_size", "crop_size", "mean", "std")]
    if any(v is None for v in values):
        return None
    resize, crop, mean, std = values
    interpolation = getattr(getattr(t, "interpolation", None), "value", "bilinear")
    return Preprocessing(int(resize[0]), int(crop[0]), tuple(mean), tuple(std), str(interpolation))


def _entry(model: str, weights, default: bool) -> WeightsEntry:
    from torch.hub import HASH_REGEX  # the same rule torch.hub's check_hash applies to the file name

    meta = weights.meta
    file_name = weights.url.rsplit("/", 1)[-1]
    match = HASH_REGEX.search(file_name)
    name = weights.name
    return WeightsEntry(
        model=model,
        version=(name[len(_ENUM_PREFIX) :] if name.startswith(_ENUM_PREFIX) else name).lower(),
        enum=f"{type(weights).__name__}.{name}",
        default=default,
        url=weights.url,
        sha256_prefix=match.group(1) if match else "",
        categories=tuple(meta.get("categories") or ()),
        metrics={ds: dict(figs) for ds, figs in (meta.get("_metrics") or {}).items()},
        ops_gflops=float(meta.get("_ops", 0.0)),
        file_size_mb=float(meta.get("_file_size", 0.0)),
        num_params=int(meta.get("num_params", 0)),
        recipe=str(meta.get("recipe", "")),
        preprocessing=_preprocessing(weights),
    )


@functools.cache
def _from_torchvision() -> dict[str, tuple[WeightsEntry, ...]]:
    import torchvision.models as tvm

    published = set(tvm.list_models(module=tvm))  # classification models only
    out = {}
    for name in list_models():
        if name in published:
            enum = tvm.get_model_weights(name)
            out[name] = tuple(_entry(name, w, w is enum.DEFAULT) for w in enum)
    return out


_overrides: dict[tuple[str, str], WeightsEntry] = {}


def catalogue() -> dict[str, tuple[WeightsEntry, ...]]:
    """Every zoo model with published weights -> its versions (torchvision's order, overrides applied)."""
    out = {name: list(versions) for name, versions in _from_torchvision().items()}
    for (name, version), entry in _overrides.items():
        versions = out.setdefault(name, [])
        at = [i for i, e in enumerate(versions) if e.version == version]
        if at:
            versions[at[0]] = entry
        else:
            versions.append(entry)
    return {name: tuple(versions) for name, versions in out.items()}


@contextmanager
def override(*replacements: WeightsEntry) -> Iterator[None]:
    """Add or replace catalogue entries while the block runs (keyed by model and version).

    For tests and private mirrors whose files are not the publisher's: a test serves a state dict it made
    under torchvision's file name and registers an entry carrying that file's own SHA-256 prefix."""
    saved = dict(_overrides)
    _overrides.update({(e.model, e.version): e for e in replacements})
    try:
        yield
    finally:
        _overrides.clear()
        _overrides.update(saved)


def user_entry(model: str, version: str) -> WeightsEntry:
    """A version of the user's own: the default version's architecture and preprocessing, no publisher's
    file, hash, classes or figures."""
    if not version or not version.replace("-", "").replace("_", "").isalnum() or len(version) > 40:
        raise UnknownModelError(
            f"a version of your own is a short name of letters, digits, - and _, not {version!r}"
        )
    default = lookup(model)
    return WeightsEntry(
        model=model,
        version=version.lower(),
        enum="",
        default=False,
        url="",
        sha256_prefix="",
        categories=(),
        metrics={},
        preprocessing=default.preprocessing,
        user=True,
    )


def split_spec(text: str) -> tuple[str, str]:
    """``"resnet50:v2"`` -> ``("resnet50", "v2")``; ``"resnet50"`` -> ``("resnet50", "")`` (the default)."""
    name, _, version = text.strip().partition(":")
    return name, version


def _version_key(text: str) -> str:
    """``""``/``imagenet``/``default`` -> ``""``; ``imagenet:v2``, ``v2``, ``IMAGENET1K_V2`` and
    ``ResNet50_Weights.IMAGENET1K_V2`` -> ``v2``."""
    s = text.strip().lower().rsplit(".", 1)[-1]
    if s in ("", "imagenet", "default"):
        return ""
    for prefix in ("imagenet:", _ENUM_PREFIX.lower()):
        if s.startswith(prefix):
            return s[len(prefix) :]
    return s


def entries(model: str) -> tuple[WeightsEntry, ...]:
    """The versions of ``model``'s weights; :class:`UnknownModelError` for a name the zoo does not have or
    one with no published weights."""
    get_model_info(model)  # an unknown name gets the registry's "did you mean"
    found = catalogue().get(model)
    if not found:
        raise UnknownModelError(
            f"no published weights for {model!r}; {PUBLISHER} publishes weights for "
            f"{', '.join(sorted(catalogue()))}"
        )
    return found


def lookup(model: str, version: str = "") -> WeightsEntry:
    """The entry for ``model`` and ``version`` (any spelling :func:`_version_key` accepts; empty = default)."""
    found = entries(model)
    default = next((e for e in found if e.default), found[0])
    key = _version_key(version)
    if not key:
        return default
    for e in found:
        if e.version == key:
            return e
    known = [f"imagenet (= {default.spec})"] + [e.spec for e in found]
    raise UnknownModelError(f"unknown version {version!r} of {model}'s weights; known: {', '.join(known)}")
