"""Prediction: :class:`Predictor` (PyTorch or onnxruntime backend), :func:`predict`, and image loading.

    predictor = Predictor.from_checkpoint("runs/lenet5", backend="onnxruntime")
    images = predictor.load_images(["seven.png"])  # uint8 (N, C, H, W), at the dataset's image size
    probs = predictor.predict(images)           # float32 (N, num_classes), rows sum to 1
    predictor.topk(images, k=3)                 # [[("7", 0.98), ("1", 0.01), ...], ...]

The Predictor is the one prediction path: ``cnnzoo predict``, :func:`predict` (``cnnzoo.predict``) and the
web app all go through it. Images go in as uint8 tensors; the one preprocessing
(:func:`cnnzoo.preprocess.preprocess`: pad or resize to the model's input size, /255, normalise with the
training mean/std of the model's card) turns them into the model's float input, so a prediction sees exactly
what training saw. A bare model (random weights) has a card without statistics: /255 only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .card import ModelCard, card_of
from .data import dataset_facts
from .errors import CheckpointError, DataError, ShapeError
from .images import IMAGE_FORMATS, decode_image, to_channels
from .preprocess import preprocess
from .tta import for_prediction

__all__ = ["Predictor", "predict", "load_image", "load_model_or_checkpoint", "image_size", "IMAGE_FORMATS"]


# ----------------------------------------------------------------------------------------------- images


def load_image(
    path: str | Path,
    channels: int,
    size: tuple[int, int] | int,
    invert: bool | str = "auto",
    max_pixels: int | None = None,
) -> torch.Tensor:
    """Read a PNG/JPEG/BMP/GIF/WebP file as a uint8 tensor (channels, H, W).

    - The file goes through the one guarded decoder (:func:`cnnzoo.images.decode_image`: allowed formats,
      pixel cap ``max_pixels`` (default :data:`cnnzoo.images.MAX_PIXELS`), side and aspect-ratio bounds).
    - Transparent pixels are composited onto white (a canvas drawing is often black strokes on transparent).
    - ``channels=1`` gives luminance (ITU-R 601: 0.299 R + 0.587 G + 0.114 B, Pillow's "L"); 3 gives RGB.
    - The image is centre-cropped to the target aspect ratio, then resized (antialiased) to ``size`` (H, W).
    - ``invert``: MNIST-style models saw light strokes on a dark background; a drawing or a scan is dark on
      light. ``"auto"`` inverts a single-channel image when its border (the outer ring of pixels, where the
      background is) is light on average (mean > 127); colour images are never auto-inverted. ``True`` /
      ``False`` force it.
    - Unreadable, truncated, non-image or oversized files raise :class:`DataError` naming the file.
    """
    import numpy as np
    from PIL import Image, ImageOps

    if channels not in (1, 3):
        raise ShapeError(f"{path}: cannot make a {channels}-channel image (1 = grayscale, 3 = RGB)")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    mode = "L" if channels == 1 else "RGB"
    # draft: a JPEG decoder may downscale by 1/2..1/8 while decoding (fast for big photos)
    with decode_image(path, str(path), max_pixels, draft=(mode, (w, h))) as im:
        try:
            im = ImageOps.fit(to_channels(im, channels), (w, h), method=Image.Resampling.BILINEAR)
        except MemoryError:
            raise DataError(f"{path}: image too large to decode") from None
        pixels = torch.from_numpy(np.array(im, dtype=np.uint8))  # (H, W) or (H, W, 3), a writable copy

    image = pixels.unsqueeze(0) if channels == 1 else pixels.permute(2, 0, 1).contiguous()  # (C, H, W)
    if invert == "auto":
        invert = channels == 1 and border_mean(image) > 127
    elif invert not in (True, False):
        raise ValueError(f"invert must be True, False or 'auto', not {invert!r}")
    return 255 - image if invert else image


def border_mean(image: torch.Tensor) -> float:
    """Mean of the outer ring of pixels of a (C, H, W) uint8 image: the background's brightness."""
    ring = torch.cat([image[:, 0, :], image[:, -1, :], image[:, :, 0], image[:, :, -1]], dim=1)
    return ring.float().mean().item()


def image_size(card: ModelCard) -> tuple[int, int]:
    """(H, W) to read user images at: for a card with ``resize`` (pretrained weights), the centre square at
    that side, which the preprocessing then centre-crops to the input size (torchvision's resize 256, crop
    224); else the native size of the card's dataset (28×28 for the MNIST family, which the preprocessing
    pads to LeNet-5's 32×32 field, as in training), else the model's input size."""
    if card.resize is not None:
        return (card.resize, card.resize)
    return dataset_facts(card.dataset).native_size or tuple(card.input_size[1:])


# ----------------------------------------------------------------------------------------- checkpoints


def load_model_or_checkpoint(
    spec: str | Path, warn=None, weights: str | None = None, num_classes: int | None = None
) -> tuple[nn.Module, ModelCard]:
    """``spec`` is a run directory or ``.safetensors`` file from ``cnnzoo train``, or a registered model name
    (with ``weights``: pretrained ones, ``imagenet``, ``imagenet:v2`` or a file (:func:`cnnzoo.zoo.create_model`);
    without: random weights, and ``warn`` is called with a message). Returns the model in eval mode and its
    card: the checkpoint's :class:`~cnnzoo.checkpoint.CheckpointMeta`, the weights' card, or for a bare
    model its card with the registry's class count numbered "0", "1", ..."""
    from .checkpoint import load_checkpoint
    from .models import create_model, get_model_info, list_models

    path = Path(spec)
    if weights is not None:
        if str(spec) not in list_models():
            if path.exists():
                raise CheckpointError(f"{spec}: --weights goes with a model name; a checkpoint has its own")
            get_model_info(str(spec))  # raises UnknownModelError with "did you mean"
        from .zoo import create_model as create_pretrained

        model = create_pretrained(str(spec), weights=weights, num_classes=num_classes)
        card = _card(model)
        if warn is not None and card.pretrained and not card.pretrained.get("verified", True):
            warn(
                f"the weights {card.pretrained.get('source')} are not {card.pretrained.get('publisher')}'s "
                f"published file (unverified): its accuracy figures do not apply"
            )
        return model.eval(), card
    if path.exists():
        model, meta = load_checkpoint(path)  # refuses pickle-based files before opening anything
        return model.eval(), meta
    if str(spec) in list_models():
        model = create_model(str(spec))
        if warn is not None:
            warn(f"{spec!r} is a model name, not a checkpoint: its weights are random")
        classes = [str(i) for i in range(get_model_info(str(spec)).num_classes)]
        return model.eval(), _card(model).replace(classes=classes)
    from .models.source import is_layer_string, resolve_model

    if is_layer_string(str(spec)):  # a net typed as a layer string: random weights, like a bare zoo name
        model = resolve_model(str(spec))
        if warn is not None:
            warn(f"{spec!r} is a layer string, not a checkpoint: its weights are random")
        card = _card(model)
        width = model.eval()(torch.zeros(1, *card.input_size)).shape[1]
        return model, card.replace(classes=[str(i) for i in range(width)])
    if path.suffix or "/" in str(spec):
        raise CheckpointError(f"{spec}: no such checkpoint (a run directory or a .safetensors file)")
    create_model(str(spec))  # raises UnknownModelError with "did you mean"
    raise AssertionError("unreachable")


def _card(model: nn.Module, images: torch.Tensor | None = None) -> ModelCard:
    """The model's card; for a plain ``nn.Module`` without one, a card for the images' own size (no
    normalisation)."""
    card = card_of(model)
    if card is not None:
        return card
    if images is None:
        raise ShapeError(f"{type(model).__name__} has no model card: give it one (cnnzoo.card.attach_card)")
    return ModelCard(model=type(model).__name__, input_size=tuple(images.shape[-3:]))


# ------------------------------------------------------------------------------------------- predictor


class Predictor:
    """Batched inference for one model.

    ``backend="torch"``: eval mode, ``torch.inference_mode`` and, by default, the channels_last (NHWC) memory
    format, with which oneDNN's convolutions ran LeNet-5, ResNet-18 and VGG-16 1.15–1.37× faster than the
    default NCHW here (docs/benchmarks.md, "Inference"). It converts ``model``'s weights in place.
    ``backend="onnxruntime"``: the model is exported to ONNX in memory (dynamic batch) and run by an
    onnxruntime CPU session using as many threads as torch does; the export is checked against PyTorch.
    ``card``: what the model takes (input size, mean/std, classes); default: the model's own card. Where the
    card says ``test_flip``, each prediction averages the image's logits with its mirror image's
    (:mod:`cnnzoo.tta`), in both backends.
    """

    def __init__(
        self,
        model: nn.Module,
        card: ModelCard | None = None,
        backend: str = "torch",
        batch_size: int = 64,
        channels_last: bool = True,
    ) -> None:
        if backend not in ("torch", "onnxruntime"):
            raise ValueError(f"backend must be 'torch' or 'onnxruntime', not {backend!r}")
        self.model = model.eval()
        self.card = card if card is not None else _card(model)
        self.backend, self.batch_size = backend, batch_size
        self.channels_last = channels_last and backend == "torch"
        self._classes: list[str] | None = list(self.card.classes) or None
        self._session = None
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._net = for_prediction(self.model, self.card)  # with the test-time flip where the card has it
        if backend == "onnxruntime":
            self._session = _ort_session(self._net, self.card)

    @classmethod
    def from_checkpoint(cls, path: str | Path, backend: str = "torch", **kwargs) -> Predictor:
        model, card = load_model_or_checkpoint(path)
        return cls(model, card, backend=backend, **kwargs)

    @property
    def meta(self) -> ModelCard:
        """Deprecated name of :attr:`card`."""
        return self.card

    @property
    def classes(self) -> list[str]:
        """The card's class names, else "0", "1", ... (one forward pass finds how many)."""
        if self._classes is None:
            x = torch.zeros(1, *self.card.input_size)
            self._classes = [str(i) for i in range(int(self.forward(x).shape[1]))]
        return self._classes

    @property
    def image_size(self) -> tuple[int, int]:
        return image_size(self.card)

    def load_images(self, paths: Sequence[str | Path], invert: bool | str = "auto") -> torch.Tensor:
        """Files -> uint8 (N, C, H, W) at the size the checkpoint's images had. For colour models
        ``invert="auto"`` never inverts; for grayscale ones it follows the border (see :func:`load_image`)."""
        c = self.card.input_size[0]
        return torch.stack([load_image(p, c, self.image_size, invert=invert) for p in paths])

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, h, w) -> float32 (N, C, H, W) as the model saw it in training: checks the batch,
        then :func:`cnnzoo.preprocess.preprocess` with the model's card (the one preprocessing)."""
        if images.dtype != torch.uint8:
            raise DataError(f"images must be uint8 tensors (0..255), got {images.dtype}")
        if images.ndim == 3:
            images = images.unsqueeze(0)
        c = self.card.input_size[0]
        if images.ndim != 4 or images.shape[1] != c:
            raise ShapeError(
                f"{self.card.model} takes {c}-channel images (N, {c}, H, W); got {tuple(images.shape)}"
            )
        return preprocess(images, self.card).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Already preprocessed float input (N, C, H, W) -> float32 logits on the CPU, in batches."""
        if len(x) <= self.batch_size:  # the common case: one batch, no copy into a result tensor
            return self._run(x)
        return torch.cat([self._run(chunk) for chunk in x.split(self.batch_size)])

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float32 logits (N, num_classes), in batches of ``batch_size``."""
        return self.forward(self.to_input(images))

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, C, H, W) -> class probabilities (N, num_classes), softmax of the logits."""
        return torch.softmax(self.logits(images), dim=1)

    def topk(self, images: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable classes of each image as ``(class name, probability)``, best first."""
        probs = self.predict(images)
        values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
        classes = self.classes
        return [
            [(classes[i], float(v)) for v, i in zip(vs, ix, strict=True)]
            for vs, ix in zip(values.tolist(), indices.tolist(), strict=True)
        ]

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self._session is not None:
            out = self._session.run(None, {self._session.get_inputs()[0].name: x.contiguous().numpy()})[0]
            return torch.from_numpy(out)
        param = next(self.model.parameters(), None)
        if param is not None:
            x = x.to(param.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self._net(x).float().cpu()


def predict(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 1024,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """Class probabilities (N, num_classes), on the CPU, of ``model`` (on whatever device it is) for images
    (N, C, H, W) or (C, H, W). uint8 images are preprocessed like training, with the model's card (or the
    given ``mean``/``std``); float images are taken as already preprocessed. The model's weights keep their
    memory format (no channels_last conversion of a caller's model). A numpy array is read as ``fit`` reads
    one: N×H×W, N×H×W×C (Keras) or N×C×H×W."""
    if not isinstance(images, torch.Tensor):
        from .train.inputs import as_images

        images = as_images(images)[0]
    if images.ndim == 3:
        images = images[None]
    card = _card(model, images)
    if mean is not None or std is not None:
        card = card.replace(
            mean=mean if mean is not None else card.mean, std=std if std is not None else card.std
        )
    predictor = Predictor(model, card, batch_size=batch_size, channels_last=False)
    if images.dtype == torch.uint8:
        return predictor.predict(images)
    return torch.softmax(predictor.forward(images), dim=1)


def _ort_session(model: nn.Module, card: ModelCard):
    """An onnxruntime CPU session of ``model`` with a dynamic batch, verified against PyTorch."""
    import onnxruntime as ort

    from .export import onnx_bytes, verify_onnx

    proto = onnx_bytes(model, card.input_size, dynamic_batch=True, optimize=False)  # onnxruntime folds
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # same CPU budget as the torch backend
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(proto, options, providers=["CPUExecutionProvider"])
    verify_onnx(model, session, card.input_size, batch_sizes=(2,), name=card.model)
    return session
