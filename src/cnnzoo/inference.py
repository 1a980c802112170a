"""Fast inference: :class:`Predictor` (PyTorch or onnxruntime backend) and image loading for ``predict``.

    predictor = Predictor.from_checkpoint("runs/lenet5", backend="onnxruntime")
    images = torch.stack([load_image("seven.png", channels=1, size=(28, 28))])  # uint8 (N, C, H, W)
    probs = predictor.predict(images)           # float32 (N, num_classes), rows sum to 1
    predictor.topk(images, k=3)                 # [[("7", 0.98), ("1", 0.01), ...], ...]

Images go in as uint8 tensors; the checkpoint's own preprocessing (``cnnzoo.checkpoint.preprocess``: pad or
resize to the model's input size, /255, normalise with the training mean/std) turns them into the model's
float input, so a prediction sees exactly what training saw. A bare model (random weights) gets /255 only.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .errors import CheckpointError, DataError, ShapeError

if TYPE_CHECKING:
    from .checkpoint import CheckpointMeta

__all__ = ["Predictor", "load_image", "load_model_or_checkpoint", "ModelMeta", "IMAGE_FORMATS"]

# Formats Pillow may decode here. A short list keeps the attack surface of user uploads small.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
# Refuse images above this many pixels before decoding them (a decompression bomb declares a huge size in a
# tiny file). Pillow's own guard warns at 89 M pixels; 40 M (e.g. 8000×5000) is ample for a classifier.
MAX_IMAGE_PIXELS = 40_000_000
# Datasets whose images are light strokes on a dark background (what invert="auto" aims for).
_LIGHT_ON_DARK = ("mnist", "fashion-mnist", "kmnist")


# ----------------------------------------------------------------------------------------------- images


def load_image(
    path: str | Path,
    channels: int,
    size: tuple[int, int] | int,
    invert: bool | str = "auto",
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> torch.Tensor:
    """Read a PNG/JPEG/BMP/GIF/WebP file as a uint8 tensor (channels, H, W).

    - Transparent pixels are composited onto white (a canvas drawing is often black strokes on transparent).
    - ``channels=1`` gives luminance (ITU-R 601: 0.299 R + 0.587 G + 0.114 B, Pillow's "L"); 3 gives RGB.
    - The image is centre-cropped to the target aspect ratio, then resized (antialiased) to ``size`` (H, W).
    - ``invert``: MNIST-style models saw light strokes on a dark background; a drawing or a scan is dark on
      light. ``"auto"`` inverts a single-channel image when its border (the outer ring of pixels, where the
      background is) is light on average (mean > 127); colour images are never auto-inverted. ``True`` /
      ``False`` force it.
    - Unreadable, truncated, non-image or oversized files raise :class:`DataError` naming the file.
    """
    from PIL import Image, ImageOps

    if channels not in (1, 3):
        raise ShapeError(f"{path}: cannot make a {channels}-channel image (1 = grayscale, 3 = RGB)")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) between 1× and 2× its own limit; make that an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=IMAGE_FORMATS) as im:
                if im.width * im.height > max_pixels:
                    raise DataError(
                        f"{path}: image is {im.width}×{im.height} = {im.width * im.height:,} pixels, "
                        f"more than the limit of {max_pixels:,} (a decompression bomb?)"
                    )
                # JPEG: let the decoder downscale by 1/2..1/8 while decoding (fast for big photos).
                im.draft("L" if channels == 1 else "RGB", (w, h))
                im = ImageOps.exif_transpose(im)  # phone photos store their rotation in EXIF
                im = _flatten_alpha(im).convert("L" if channels == 1 else "RGB")
                im = ImageOps.fit(im, (w, h), method=Image.Resampling.BILINEAR)
                pixels = torch.from_numpy(_as_array(im))  # (H, W) or (H, W, 3), uint8
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: image too large (a decompression bomb?): {e}") from None
    except Image.UnidentifiedImageError:
        raise DataError(
            f"{path}: not an image cnnzoo can read (formats: {', '.join(IMAGE_FORMATS)})"
        ) from None
    except MemoryError:
        raise DataError(f"{path}: image too large to decode") from None
    except Exception as e:  # noqa: BLE001 — Pillow's decoders raise OSError, SyntaxError, ValueError, ...
        # on corrupt data; for a user's file every one of them means the same thing: not a readable image.
        raise DataError(f"{path}: corrupt or truncated image ({type(e).__name__}: {e})") from None

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


def _flatten_alpha(im):
    """Composite transparent images onto white, so transparency reads as background, not as black."""
    from PIL import Image

    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im


def _as_array(im):
    import numpy as np

    return np.array(im, dtype=np.uint8)  # a writable copy; torch.from_numpy shares it


# ----------------------------------------------------------------------------------------- checkpoints


@dataclass
class ModelMeta:
    """What a prediction needs besides the weights (from a checkpoint's ``checkpoint.json``, or defaults)."""

    model: str
    input_size: tuple[int, int, int]  # (C, H, W) the network takes
    classes: list[str]
    mean: list[float] | None = None  # per channel, 0..1 units; None = no normalisation
    std: list[float] | None = None
    dataset: str | None = None
    checkpoint: CheckpointMeta | None = None  # None for a bare model (random weights)

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) to load user images at: 28×28 for MNIST-style datasets (preprocessing pads them to
        LeNet-5's 32×32 field, as in training), else the model's input size."""
        if self.dataset in _LIGHT_ON_DARK:
            return (28, 28)
        return tuple(self.input_size[1:])

    def preprocessing(self) -> dict:
        """The dict ``cnnzoo.checkpoint.preprocess`` takes: pad/resize, /255, normalise."""
        c = self.input_size[0]
        mean = list(self.mean) if self.mean is not None else [0.0] * c
        std = list(self.std) if self.std is not None else [1.0] * c
        return {"model": self.model, "input_size": list(self.input_size), "mean": mean, "std": std}


def load_model_or_checkpoint(spec: str | Path, warn=None) -> tuple[nn.Module, ModelMeta]:
    """``spec`` is a run directory or ``.safetensors`` file from ``cnnzoo train``, or a registered model name
    (random weights: ``warn`` is called with a message). Returns the model in eval mode and its meta."""
    from .registry import create_model, get_model_info, list_models

    path = Path(spec)
    if path.exists():
        # load_checkpoint refuses pickle-based files (checkpoint.refuse_pickle) before opening anything
        from .checkpoint import load_checkpoint  # the training engineer's contract (docs/architecture.md)

        model, ckpt = load_checkpoint(path)
        c, h, w = ckpt.input_size
        meta = ModelMeta(
            model=ckpt.model,
            input_size=(c, h, w),
            classes=list(ckpt.classes) or _numbered(model),
            mean=list(ckpt.mean),
            std=list(ckpt.std),
            dataset=ckpt.dataset or None,
            checkpoint=ckpt,
        )
        return model.eval(), meta
    if str(spec) in list_models():
        model = create_model(str(spec))
        if warn is not None:
            warn(f"{spec!r} is a model name, not a checkpoint: its weights are random")
        classes = [str(i) for i in range(get_model_info(str(spec)).num_classes)]
        meta = ModelMeta(model=str(spec), input_size=tuple(model.default_input_size), classes=classes)
        return model.eval(), meta
    if path.suffix or "/" in str(spec):
        raise CheckpointError(f"{spec}: no such checkpoint (a run directory or a .safetensors file)")
    create_model(str(spec))  # raises UnknownModelError with "did you mean"
    raise AssertionError("unreachable")


def _numbered(model: nn.Module) -> list[str]:
    """Class names "0", "1", ... for a model without a checkpoint (one forward pass finds how many)."""
    return [str(i) for i in range(_num_outputs(model))]


def _num_outputs(model: nn.Module) -> int:
    with torch.inference_mode():
        c, h, w = model.default_input_size
        return int(model.eval()(torch.zeros(1, c, h, w)).shape[1])


# ------------------------------------------------------------------------------------------- predictor


class Predictor:
    """Batched inference for one model.

    ``backend="torch"``: eval mode, ``torch.inference_mode`` and, by default, the channels_last (NHWC) memory
    format, with which oneDNN's convolutions ran LeNet-5, ResNet-18 and VGG-16 1.15–1.37× faster than the
    default NCHW here (docs/benchmarks.md, "Inference"). It converts ``model``'s weights in place.
    ``backend="onnxruntime"``: the model is exported to ONNX in memory (dynamic batch) and run by an
    onnxruntime CPU session using as many threads as torch does; the export is checked against PyTorch.
    """

    def __init__(
        self,
        model: nn.Module,
        meta: ModelMeta | None = None,
        backend: str = "torch",
        batch_size: int = 64,
        channels_last: bool = True,
    ) -> None:
        if backend not in ("torch", "onnxruntime"):
            raise ValueError(f"backend must be 'torch' or 'onnxruntime', not {backend!r}")
        self.model = model.eval()
        self.meta = meta or ModelMeta(
            model=getattr(model, "model_name", type(model).__name__),
            input_size=tuple(model.default_input_size),
            classes=_numbered(model),
        )
        self.backend, self.batch_size = backend, batch_size
        self.channels_last = channels_last and backend == "torch"
        self._session = None
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if backend == "onnxruntime":
            self._session = _ort_session(self.model, self.meta.input_size)

    @classmethod
    def from_checkpoint(cls, path: str | Path, backend: str = "torch", **kwargs) -> Predictor:
        model, meta = load_model_or_checkpoint(path)
        return cls(model, meta, backend=backend, **kwargs)

    @property
    def classes(self) -> list[str]:
        return self.meta.classes

    def load_images(self, paths: Sequence[str | Path], invert: bool | str = "auto") -> torch.Tensor:
        """Files -> uint8 (N, C, H, W) at the size the checkpoint's images had. For colour models
        ``invert="auto"`` never inverts; for grayscale ones it follows the border (see :func:`load_image`)."""
        c = self.meta.input_size[0]
        return torch.stack([load_image(p, c, self.meta.image_size, invert=invert) for p in paths])

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, h, w) -> float32 (N, C, H, W) as the model saw it in training."""
        if images.dtype != torch.uint8:
            raise DataError(f"images must be uint8 tensors (0..255), got {images.dtype}")
        if images.ndim == 3:
            images = images.unsqueeze(0)
        c = self.meta.input_size[0]
        if images.ndim != 4 or images.shape[1] != c:
            raise ShapeError(
                f"{self.meta.model} takes {c}-channel images (N, {c}, H, W); got {tuple(images.shape)}"
            )
        from .checkpoint import preprocess  # the training run's own preprocessing

        return preprocess(images, self.meta.preprocessing()).float()

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float32 logits (N, num_classes), in batches of ``batch_size``."""
        x = self.preprocess(images)
        if len(x) <= self.batch_size:  # the common case: one batch, no copy into a result tensor
            return self._run(x)
        return torch.cat([self._run(chunk) for chunk in x.split(self.batch_size)])

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, C, H, W) -> class probabilities (N, num_classes), softmax of the logits."""
        return torch.softmax(self.logits(images), dim=1)

    def topk(self, images: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable classes of each image as ``(class name, probability)``, best first."""
        probs = self.predict(images)
        values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
        return [
            [(self.classes[i], float(v)) for v, i in zip(vs, ix, strict=True)]
            for vs, ix in zip(values.tolist(), indices.tolist(), strict=True)
        ]

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self._session is not None:
            out = self._session.run(None, {self._session.get_inputs()[0].name: x.contiguous().numpy()})[0]
            return torch.from_numpy(out)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.model(x).float()


def _ort_session(model: nn.Module, input_size: tuple[int, int, int]):
    """An onnxruntime CPU session of ``model`` with a dynamic batch, verified against PyTorch."""
    import onnxruntime as ort

    from .export import onnx_bytes, verify_onnx

    proto = onnx_bytes(model, input_size, dynamic_batch=True, optimize=False)  # onnxruntime folds
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # same CPU budget as the torch backend
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(proto, options, providers=["CPUExecutionProvider"])
    verify_onnx(model, session, input_size, batch_sizes=(2,), name=getattr(model, "model_name", "model"))
    return session
