"""The model card: the one record of what a model is and what input it expects.

``create_model`` attaches a card to every model it builds (``model.card``); ``fit`` completes it with the
dataset, its classes and its normalisation; a checkpoint stores it (plus the epoch and metrics), and
``load_checkpoint`` gives it back. Everything that needs to know "what does this model take" — the
analyzer, the trainer, the predictor, export, the web app — reads :func:`card_of`, nothing else.

This module is at the bottom of the package: it imports nothing from cnnzoo.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["ModelCard", "card_of", "attach_card"]


@dataclass(frozen=True)
class ModelCard:
    model: str  # registry name: create_model(model, **model_kwargs) rebuilds the network
    # the keyword arguments it was built with (num_classes, in_channels, input_size, ...); not hashed: a dict
    model_kwargs: dict = field(default_factory=dict, hash=False, compare=True)
    input_size: tuple[int, int, int] = (1, 32, 32)  # (C, H, W) the network takes
    classes: tuple[str, ...] = ()  # output names; () until trained ("0", "1", ... are shown then)
    mean: tuple[float, ...] = (0.0,)  # per channel, in 0..1 units: what normalisation subtracts
    std: tuple[float, ...] = (1.0,)  # ... and divides by; (0,), (1,) means "no normalisation"
    dataset: str = ""  # the dataset it was trained on ("" for a fresh model): its facts live in cnnzoo.data
    # the side an image's shorter side is resized to before the centre crop to input_size (pretrained weights
    # were evaluated so: torchvision's resize 256 -> crop 224); None: the whole image is fitted to input_size
    resize: int | None = None
    # where the weights started from: {"model", "version", "publisher", "sha256", "verified", "source",
    # "spec"} of the pretrained weights it was built with (cnnzoo.zoo.create_model); {} for random ones
    pretrained: dict = field(default_factory=dict, hash=False, compare=True)
    # predictions average the logits of the image and its mirror image (cnnzoo.tta): set by fit for a net
    # trained with random mirroring and ``test_flip``
    test_flip: bool = False
    # how to rebuild a model that is not a zoo name or a layer string (cnnzoo.models.source.ModelSource):
    # {"kind": "file", "path", "name", "args", "sha256"} or {"kind": "torchvision" | "timm", "name", "args"}
    source: dict = field(default_factory=dict, hash=False, compare=True)

    def __post_init__(self) -> None:
        # tuples whatever came in (JSON gives lists): a card is a value, never shared mutable state
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))
        object.__setattr__(self, "resize", None if self.resize is None else int(self.resize))
        object.__setattr__(self, "pretrained", dict(self.pretrained))
        object.__setattr__(self, "test_flip", bool(self.test_flip))
        object.__setattr__(self, "source", dict(self.source))

    @property
    def channels(self) -> int:
        return self.input_size[0]

    def replace(self, **changes) -> ModelCard:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The JSON form (lists, as checkpoint.json has always stored them)."""
        return (
            {
                "model": self.model,
                "model_kwargs": dict(self.model_kwargs),
                "input_size": list(self.input_size),
                "dataset": self.dataset,
                "classes": list(self.classes),
                "mean": list(self.mean),
                "std": list(self.std),
            }
            | ({"resize": self.resize} if self.resize is not None else {})
            | ({"pretrained": dict(self.pretrained)} if self.pretrained else {})
            | ({"test_flip": True} if self.test_flip else {})
            | ({"source": dict(self.source)} if self.source else {})
        )  # only when set: the records of models without them stay as they were


def card_of(model) -> ModelCard | None:
    """The card of ``model``: the one ``create_model``/``fit``/``load_checkpoint``/``attach_card`` attached,
    else None (a model of the user's own that nothing has described yet)."""
    card = getattr(model, "card", None)
    return card if isinstance(card, ModelCard) else None


def attach_card(model, card: ModelCard):
    """Give ``model`` its card (``model.card``). Returns ``model``."""
    model.card = card
    return model
