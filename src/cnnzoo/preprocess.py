"""The one preprocessing: uint8 images -> the float batch a model takes.

    x = preprocess(images_uint8, card)          # pad/resize to card.input_size, /255, normalise

A card with ``resize`` (pretrained weights: torchvision's resize 256, centre crop 224) has its images' shorter
side resized to ``resize`` and the centre cut to ``input_size``, as the publisher evaluated them; in training
the random resized crop (cnnzoo.train.augment) takes that step's place.

The trainer (with augmentation between the resize and the scaling), ``cnnzoo predict``, the
:class:`~cnnzoo.inference.Predictor` (torch and onnxruntime), evaluation and the web app all call it, so a
prediction sees exactly what training saw. Batched tensor ops only: no PIL, no per-image Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .card import ModelCard
from .errors import ShapeError

__all__ = ["preprocess", "fit_to_size", "resize_crop", "to_float", "normalize"]


def preprocess(
    images: torch.Tensor,
    card: ModelCard,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """uint8 images (N, C, h, w) or (C, h, w) -> float32 (N, C, H, W) for the model of ``card``: padded or
    resized to ``card.input_size`` (:func:`fit_to_size`; with ``card.resize`` and no ``augment``, resized
    and centre-cropped: :func:`resize_crop`), then ``augment`` (training only: random crops and flips on the
    still-uint8 batch), then / 255 and ``(x - mean) / std`` with the card's statistics."""
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ShapeError(f"expected images (N, C, H, W), got shape {tuple(images.shape)}")
    c, h, w = card.input_size
    if images.shape[1] != c:
        raise ShapeError(f"images have {images.shape[1]} channel(s) but model {card.model!r} takes {c}")
    if card.resize is not None and augment is None:
        x = resize_crop(images, card.resize, (h, w))
    else:
        x = fit_to_size(images, (h, w))
    if augment is not None:
        x = augment(x)
    x = normalize(to_float(x), card.mean, card.std)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def fit_to_size(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bring (N, C, h, w) images to ``size`` = (H, W) (or (C, H, W)).

    Slightly smaller images are zero-padded around the centre, as LeCun et al. put the 28×28 MNIST digits in a
    32×32 field (28 -> 32: pad 2 each side); anything else is resized (bilinear, antialiased), e.g. CIFAR's
    32×32 -> AlexNet's 227×227. "Slightly" = at least 3/4 of the target on both sides. uint8 stays uint8
    when only padding is needed; resizing returns float in the same 0..255 range.
    """
    th, tw = tuple(size)[-2:]
    h, w = images.shape[-2:]
    if (h, w) == (th, tw):
        return images
    if h <= th and w <= tw and 4 * h >= 3 * th and 4 * w >= 3 * tw:
        top, left = (th - h) // 2, (tw - w) // 2
        return F.pad(images, (left, tw - w - left, top, th - h - top))
    resized = F.interpolate(
        images.float(), size=(th, tw), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.clamp_(0, 255)


def resize_crop(images: torch.Tensor, resize: int, size: Sequence[int]) -> torch.Tensor:
    """torchvision's evaluation transform on a batch: the shorter side resized to ``resize`` (bilinear,
    antialiased; the longer one in proportion, rounded down as torchvision does), then the centre (H, W) of
    ``size`` cut out. An image whose shorter side already is ``resize`` is only cropped (what
    :func:`cnnzoo.inference.load_image` delivers), so uint8 stays uint8."""
    th, tw = tuple(size)[-2:]
    h, w = images.shape[-2:]
    short, long = min(h, w), max(h, w)
    if resize < max(th, tw):  # nothing to crop from: fit the whole image
        return fit_to_size(images, (th, tw))
    if short != resize:
        other = int(resize * long / short)
        nh, nw = (resize, other) if h <= w else (other, resize)
        images = F.interpolate(
            images.float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False
        ).clamp_(0, 255)
        h, w = nh, nw
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return images[..., top : top + th, left : left + tw]


def to_float(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 0..255 (or float 0..255 after a resize) -> float 0..1."""
    return images.to(dtype) / 255.0  # not in place: a float input must not be changed under the caller


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x - mean) / std per channel, in place on a float tensor (N, C, H, W)."""
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return images.sub_(m).div_(s)
