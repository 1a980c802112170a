"""Batched preprocessing and augmentation on uint8 image tensors: no PIL, no per-image Python loop.

Every function takes a whole batch ``(N, C, H, W)`` already on the training device, so one call costs a few
tensor ops whatever the batch size. The randomness comes from an explicit ``torch.Generator``: with the same
generator state the same images are cropped and flipped the same way, which is what makes ``--seed`` and
``--resume`` exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["fit_to_size", "random_crop", "random_hflip", "normalize", "to_float", "DIGIT_DATASETS"]

# Flipping a digit or a Japanese character makes another (or no) symbol; flipping a shoe or a truck does not.
DIGIT_DATASETS = ("mnist", "kmnist", "emnist")


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


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad by ``padding`` and cut a random window of the original size per image (a shift of up to
    ±padding pixels), all images in one gather. (N, C, H, W) -> (N, C, H, W)."""
    if padding <= 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (padding,) * 4)  # (N, C, H+2p, W+2p)
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device="cpu").to(images.device)
    rows = offsets[0, :, None] + torch.arange(h, device=images.device)  # (N, H)
    cols = offsets[1, :, None] + torch.arange(w, device=images.device)  # (N, W)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chan = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def random_hflip(
    images: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``. (N, C, H, W) -> same."""
    flip = (torch.rand(images.shape[0], generator=generator, device="cpu") < p).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def to_float(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 0..255 (or float 0..255 after a resize) -> float 0..1."""
    return images.to(dtype) / 255.0  # not in place: a float input must not be changed under the caller


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x - mean) / std per channel, in place on a float tensor (N, C, H, W)."""
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return images.sub_(m).div_(s)
