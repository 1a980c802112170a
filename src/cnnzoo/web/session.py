"""The model behind the predict page: which checkpoint, how a drawing becomes the network's input,
and what each layer makes of it.

A drawing is black ink on a white canvas; MNIST and Fashion-MNIST are light on dark. ``prepare`` inverts
the image when its background disagrees with the dataset's (``invert="auto"``), crops a drawing to its ink
and centres it the way the dataset's images are framed (``fit=True``), and resizes it to the dataset's
native size; the :class:`~cnnzoo.inference.Predictor` then preprocesses it (pad, /255, normalise: the one
preprocessing) and runs the model. What the dataset's images look like comes from
:func:`cnnzoo.data.dataset_facts`; what the model takes, from its card.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn

from ..card import ModelCard, card_of
from ..checkpoint import CheckpointMeta, load_checkpoint
from ..data import DatasetFacts, dataset_facts
from ..errors import CheckpointError, CnnzooError
from ..features import FeatureExtractor
from ..images import to_channels
from ..inference import Predictor, image_size
from .images import png_data_url

GALLERY_PER_CLASS = 3
NON_FINITE = (
    "the model's outputs are not finite numbers (NaN or infinite weights?): this answer means nothing"
)
# A drawing is shrunk to this longer side before it is cropped to its ink and squared: squaring a long
# strip at full size asked for side² pixels (a 1×16.7 M PNG: 18 M × 18 M). The result is 28×28 or 32×32.
FIT_MAX_SIDE = 1024

# Layers shown on the page: modules of these kinds get a row; activations, norms and dropout that follow
# them replace the row's tensor (the page shows what the next layer reads), so "C1" shows tanh(conv).
_FOLLOWERS = ("ReLU", "Tanh", "Sigmoid", "GELU", "SiLU", "ELU", "BatchNorm", "Dropout", "LocalResponseNorm")
_SKIPPED = ("Flatten", "Identity", "Unflatten")
MAX_LAYERS, MAX_MAPS, MAX_SIDE, MAX_VECTOR = 40, 32, 64, 1024


@dataclass
class Prepared:
    """An uploaded image made ready: ``u8`` (C, h, w) at the dataset's size, ``x`` (1, C, H, W) normalised."""

    u8: torch.Tensor
    x: torch.Tensor
    inverted: bool


@dataclass
class GalleryItem:
    label: int
    image: torch.Tensor  # (C, h, w) uint8, exactly as in the test set


@dataclass
class Session:
    """One loaded model for the web app: its card (a checkpoint's metadata, or a bare model's card), the
    predictor that runs it, the dataset's facts, the gallery and the feature-map extractor."""

    model: nn.Module
    card: ModelCard
    source: str  # the run directory, or "untrained"
    warning: str | None = None
    _gallery: list[GalleryItem] | None = field(default=None, repr=False)
    _gallery_note: str = ""
    _gallery_classes: list[str] = field(default_factory=list, repr=False)
    _extractor: FeatureExtractor | None = field(default=None, repr=False)
    _layers: list[tuple[str, str, str]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # one small prediction's seconds, measured by warm_up (inf before it): the app answers small images on its
    # event loop when this is short (cnnzoo.web.app.INLINE_SECONDS)
    predict_seconds: float = field(default=math.inf, repr=False)

    def __post_init__(self) -> None:
        # NCHW as the feature maps run it: the page's prediction and its maps come from the same numbers
        self.predictor = Predictor(self.model.eval(), self.card, channels_last=False)

    # --- what the card and the dataset say ----------------------------------------------------------
    @property
    def input_size(self) -> tuple[int, int, int]:
        return tuple(self.card.input_size)

    @property
    def channels(self) -> int:
        return self.input_size[0]

    @property
    def dataset(self) -> str:
        return self.card.dataset

    @property
    def facts(self) -> DatasetFacts:
        return dataset_facts(self.dataset)

    @property
    def num_classes(self) -> int:
        return len(self.predictor.classes)

    @property
    def classes(self) -> list[str]:
        for classes in (self.card.classes, self._gallery_classes if self.gallery() else []):
            if len(classes) == self.num_classes:
                return list(classes)
        return [str(i) for i in range(self.num_classes)]

    @property
    def light_on_dark(self) -> bool:
        """The dataset's polarity; for a dataset without a known one (an image folder), whether its mean
        pixel is below mid-grey."""
        known = self.facts.light_on_dark
        return known if known is not None else float(np.mean(self.card.mean)) < 0.5

    @property
    def native_hw(self) -> tuple[int, int]:
        gallery = self.gallery()
        if gallery:
            return tuple(gallery[0].image.shape[-2:])
        return image_size(self.card)  # a pretrained card: the resize, which the preprocessing crops

    def info(self) -> dict:
        trained = isinstance(self.card, CheckpointMeta)
        return {
            "model": self.card.model,
            "source": self.source,
            "warning": self.warning,
            "dataset": self.dataset,
            "classes": self.classes,
            "input_size": list(self.input_size),
            "native_size": list(self.native_hw),
            "light_on_dark": self.light_on_dark,
            "epoch": self.card.epoch if trained else None,
            "metrics": dict(self.card.metrics) if trained else {},
            "test_accuracy": self._test_accuracy() if trained else None,
        }

    def _test_accuracy(self) -> float | None:
        """The run's accuracy on the test set (result.json, written when training ends) if it is this
        checkpoint's; the checkpoint's own metrics are the last epoch's training and validation figures."""
        test = self.card.metrics.get("test_accuracy")
        if test is not None:
            return float(test)
        path = Path(self.source)
        try:
            result = json.loads(((path if path.is_dir() else path.parent) / "result.json").read_text())
        except (OSError, ValueError):
            return None
        same = isinstance(result, dict) and result.get("epochs") == self.card.epoch
        test = result.get("test_accuracy") if same else None
        return float(test) if isinstance(test, (int, float)) else None

    # --- gallery: a few test images per class ------------------------------------------------------
    def gallery(self) -> list[GalleryItem]:
        with self._lock:
            if self._gallery is None:
                self._gallery, self._gallery_classes, self._gallery_note = _load_gallery(
                    self.dataset, self.channels
                )
            return self._gallery

    def gallery_note(self) -> str:
        self.gallery()
        return self._gallery_note

    def warm_up(self) -> None:
        """Do the one-time work (dataset for the gallery, tracing the feature extractor) before serving."""
        self.gallery()
        blank = Image.new("L" if self.channels == 1 else "RGB", self.native_hw[::-1])
        self.feature_maps(self.prepare(blank))
        prepared, times = self.prepare(blank), []
        for _ in range(3):  # the best of three: the first call after tracing may still be slow
            t0 = time.perf_counter()
            self.predict(prepared)
            times.append(time.perf_counter() - t0)
        self.predict_seconds = min(times)

    # --- from an uploaded image to the network's input ---------------------------------------------
    def prepare(self, img: Image.Image, invert: str = "auto", fit: bool = False) -> Prepared:
        img = to_channels(img, self.channels)
        if invert == "auto":
            # Only grey datasets: a photo's bright sky is no reason to invert it for CIFAR.
            inverted = self.channels == 1 and _border_is_light(img) == self.light_on_dark
        else:
            inverted = invert == "yes"
        if inverted:
            img = ImageOps.invert(img)
        if fit and self.channels == 1:
            if max(img.size) > FIT_MAX_SIDE:
                img = img.reduce(-(-max(img.size) // FIT_MAX_SIDE))  # box average, whole factor
            img = _fit_to_ink(img, self.facts.ink_margin, self.light_on_dark)
        h, w = self.native_hw
        if self.card.resize is not None and img.size != (w, h):  # a photo: its centre, as load_image reads it
            img = ImageOps.fit(img, (w, h), method=Image.Resampling.BILINEAR)
        if img.size != (w, h):
            # BOX averages the pixels each output pixel covers, like the anti-aliased scans of MNIST.
            img = img.resize((w, h), Image.Resampling.BOX if img.width >= w else Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
        u8 = torch.from_numpy(arr.copy()).reshape(h, w, self.channels).permute(2, 0, 1).contiguous()
        x = self.predictor.to_input(u8[None])  # (1, C, H, W) float, as in training
        return Prepared(u8, x, inverted)

    def seen_png(self, p: Prepared) -> str:
        """The input as the network sees it (after padding/resizing), mapped back to 0..255."""
        mean = torch.tensor(self.card.mean).view(-1, 1, 1)
        std = torch.tensor(self.card.std).view(-1, 1, 1)
        img = ((p.x[0] * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
        arr = img.permute(1, 2, 0).numpy()
        return png_data_url(Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr))

    # --- the network's answers -----------------------------------------------------------------------
    def predict(self, p: Prepared, top: int = 5) -> dict:
        probs = torch.softmax(self.predictor.forward(p.x)[0], dim=0)
        # NaN would go out as JSON null and the page would show nothing; say why instead
        finite = bool(torch.isfinite(probs).all())
        probs = torch.nan_to_num(probs, nan=0.0, posinf=0.0, neginf=0.0)
        classes = self.classes
        order = torch.argsort(probs, descending=True).tolist()
        ranked = [{"index": i, "class": classes[i], "probability": float(probs[i])} for i in order]
        return {
            "model": self.card.model,
            "prediction": ranked[0],
            "top": ranked[:top],
            "probabilities": [float(v) for v in probs],
            "classes": classes,
            "inverted": p.inverted,
            "input_png": self.seen_png(p),
            "input_size": list(self.input_size),
        } | ({} if finite else {"warning": NON_FINITE})

    def feature_maps(self, p: Prepared) -> list[dict]:
        """Every shown layer's output for this input, as 8-bit maps the page draws on canvases."""
        layers, extractor = self._feature_extractor()
        out = extractor(p.x)
        return [_encode_layer(label, kind, out[node][0]) for label, kind, node in layers if node in out]

    def _feature_extractor(self) -> tuple[list[tuple[str, str, str]], FeatureExtractor]:
        with self._lock:
            if self._extractor is None:
                self._layers = shown_layers(self.model)
                # traced once and kept: tracing costs far more than a LeNet forward pass
                self._extractor = FeatureExtractor(
                    self.model, list(dict.fromkeys(n for *_, n in self._layers))
                )
            return self._layers, self._extractor


class ShownLayer(NamedTuple):
    """One row of the page: ``head`` is the layer's module (``c1``), ``followers`` the activations, norms
    and dropout applied after it, ``node`` the last of them (whose output the row shows)."""

    label: str
    kind: str
    head: str
    node: str
    followers: tuple[str, ...]


def layer_rows(model: nn.Module) -> list[ShownLayer]:
    """The page's rows with their modules, in definition order: ``c1`` followed by ``act1`` becomes
    ``ShownLayer("C1", "Conv2d", "c1", "act1", ("act1",))``."""
    rows: list[list] = []
    for name, m in model.named_modules():
        if not name or any(True for _ in m.children()):
            continue
        kind = type(m).__name__
        follower = any(word in kind for word in _FOLLOWERS)  # "ScaledTanh" follows like "Tanh"
        if kind in _SKIPPED:
            continue
        if follower and rows:
            rows[-1][3] = name
            rows[-1][4] += (name,)
        elif not follower:
            rows.append([_label(name), kind, name, name, ()])
    return [ShownLayer(*r) for r in rows[:MAX_LAYERS]]


def shown_layers(model: nn.Module) -> list[tuple[str, str, str]]:
    """(label, layer type, node whose output to show) for the model's layers, in definition order.

    ``c1`` followed by ``act1`` becomes ``("C1", "Conv2d", "act1")``: the row shows the activation.
    """
    return [(r.label, r.kind, r.node) for r in layer_rows(model)]


def _label(name: str) -> str:
    """LeNet-5's own names (c1, s2, f6) in the paper's capitals; other names as they are."""
    return name.upper() if len(name) <= 3 and name[:1].isalpha() and name[1:].isdigit() else name


def _encode_layer(label: str, kind: str, t: torch.Tensor) -> dict:
    """(C, H, W) or (F,) -> {"maps", "h", "w", "data": 8-bit values, "signed"}; big layers are subsampled.

    Signed activations (tanh) map 0 to mid-grey (128) so the page can colour negative and positive apart;
    non-negative ones (ReLU) map 0..max to 0..255.
    """
    shape = list(t.shape)
    t = t.float()
    if t.dim() == 3 and t.shape[1] * t.shape[2] == 1:
        t = t.flatten()  # C5's 120 maps of 1×1 are a vector
    if t.dim() == 3:
        t = t[:MAX_MAPS]
        if max(t.shape[1:]) > MAX_SIDE:
            t = torch.nn.functional.adaptive_avg_pool2d(t[None], MAX_SIDE)[0]
        maps, h, w = t.shape
    else:
        t = t.flatten()[:MAX_VECTOR]
        maps, h, w = 1, 1, t.numel()
        if w == 84:  # F6: 84 = 7×12, the size of the RBF output's digit bitmaps (paper Fig. 3)
            h, w = 12, 7
    lo, hi = float(t.min()), float(t.max())
    signed = lo < 0
    if signed:
        scale = max(-lo, hi) or 1.0
        u8 = ((t / scale) * 127.5 + 127.5).clamp(0, 255)
    else:
        u8 = (t / (hi or 1.0)) * 255
    data = u8.round().to(torch.uint8).flatten().tolist()
    return {
        "label": label,
        "type": kind,
        "shape": shape,
        "maps": maps,
        "h": h,
        "w": w,
        "data": data,
        "signed": signed,
        "min": lo,
        "max": hi,
    }


def _border_is_light(img: Image.Image) -> bool:
    """Is the outer frame of the image (its background, usually) brighter than mid-grey?"""
    a = np.asarray(img.convert("L"), dtype=np.float32)
    frame = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return float(np.median(frame)) > 127


def _fit_to_ink(img: Image.Image, margin: float, light_on_dark: bool) -> Image.Image:
    """Crop a drawing to its strokes and centre them in a square with the dataset's margin."""
    ink = img if light_on_dark else ImageOps.invert(img)
    box = ink.point(lambda v: 255 if v > 32 else 0).getbbox()
    if box is None:  # an empty canvas stays empty
        return img
    crop = img.crop(box)
    side = max(crop.size)
    total = max(1, round(side / (1 - 2 * margin)))
    square = Image.new("L", (total, total), 0 if light_on_dark else 255)
    square.paste(crop, ((total - crop.width) // 2, (total - crop.height) // 2))
    return square


def _load_gallery(dataset: str, channels: int) -> tuple[list[GalleryItem], list[str], str]:
    """The first few test images of each class, the class names, or [] and a note saying why not."""
    from ..data import load_dataset

    try:
        ds = load_dataset(dataset, download=False)  # never download from a web request
        images, labels, classes = ds.test_images, ds.test_labels, list(ds.classes)
    except (CnnzooError, OSError, ValueError) as e:
        return [], [], f"no gallery: {e}"
    if images.shape[1] != channels:
        return [], [], f"no gallery: {dataset} has {images.shape[1]} channels, the model takes {channels}"
    items: list[GalleryItem] = []
    for c in sorted(set(labels.tolist())):
        idx = (labels == c).nonzero().flatten()[:GALLERY_PER_CLASS]
        items += [GalleryItem(int(c), images[i].clone()) for i in idx.tolist()]
    return items, classes, f"{len(items)} test images from {dataset}"


# --- choosing the checkpoint ---------------------------------------------------------------------------
def find_latest_run(runs_dir: str | Path = "runs") -> Path | None:
    """The newest finished run directory under ``runs_dir`` (its weights written), of any model, of those no
    process is training."""
    from ..rundir import lock_holder

    root = Path(runs_dir)
    if not root.is_dir():
        return None
    found = []
    for meta_path in [*root.glob("*/checkpoint.json"), *root.glob("*/*/checkpoint.json")]:
        weights = meta_path.parent / "model.safetensors"
        try:
            json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue  # a run still being written, or a broken one: not worth failing the server for
        training = lock_holder(meta_path.parent) is not None  # unfinished, its files changing: not served
        if weights.is_file() and not training:
            found.append((weights.stat().st_mtime, meta_path.parent))
    return max(found)[1] if found else None


def untrained_session() -> Session:
    """An untrained LeNet for Fashion-MNIST: the page works, with a banner saying it only guesses."""
    from ..models import create_model, list_models

    name = "lenet5_modern" if "lenet5_modern" in list_models() else "lenet5"
    model = create_model(name).eval()
    # the dataset names the gallery and the facts; random weights have no statistics to normalise with
    session = Session(model, card_of(model).replace(dataset="fashion-mnist"), "untrained")
    session.warning = (
        f"No trained checkpoint found: this is an untrained {name} with random weights, so its guesses "
        "mean nothing. Train one with `cnnzoo train` and restart `cnnzoo serve`."
    )
    return session


def load_session(
    checkpoint: str | Path | None = None,
    runs_dir: str | Path = "runs",
    model: str | None = None,
    weights: str | None = None,
) -> Session:
    """The checkpoint given, else ``model`` with pretrained ``weights`` (``imagenet``, ``imagenet:v2`` or a
    file), else the newest finished run of any model under ``runs_dir``, else an untrained LeNet."""
    if model is not None or weights is not None:
        if checkpoint or not (model and weights):
            raise CheckpointError("give either --checkpoint or --model NAME with --weights WEIGHTS")
        from ..zoo import create_model

        built = create_model(model, weights=weights)
        return Session(
            built.eval(), card_of(built), f"{model} {built.card.pretrained.get('version', weights)} weights"
        )
    path = Path(checkpoint) if checkpoint else find_latest_run(runs_dir)
    if path is None:
        return untrained_session()
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint or run directory")
    model, meta = load_checkpoint(path)
    if meta.input_size[0] not in (1, 3):
        raise CheckpointError(
            f"{path}: the web app needs a 1- or 3-channel image model, got {list(meta.input_size)}"
        )
    return Session(model.eval(), meta, str(path))
