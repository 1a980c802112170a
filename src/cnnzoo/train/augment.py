"""Batched preprocessing and augmentation on uint8 image tensors: no PIL, no per-image Python loop.

Every function takes a whole batch ``(N, C, H, W)`` already on the training device, so one call costs a few
tensor ops whatever the batch size. The randomness comes from an explicit ``torch.Generator``: with the same
generator state the same images are cropped and flipped the same way, which is what makes ``--seed`` and
``--resume`` exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["fit_to_size", "random_crop", "random_resized_crop", "random_hflip", "normalize", "to_float"]

# the deterministic part (pad/resize, /255, normalise) is the one preprocessing every user of a model shares
from ..data.decode import RATIO, TRAIN_SCALE  # noqa: E402  the streamed folders' crops: one range
from ..preprocess import fit_to_size, normalize, to_float  # noqa: E402,F401


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


def random_resized_crop(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = TRAIN_SCALE,
    ratio: tuple[float, float] = RATIO,
) -> torch.Tensor:
    """A random window per image, ``scale`` of its area with aspect ratio in ``ratio`` (log-uniform,
    shrunk to fit), resized back to (H, W): torchvision's RandomResizedCrop as one batched bilinear sampling
    (``affine_grid`` + ``grid_sample``). (N, C, H, W) uint8 or float 0..255 -> float 0..255, same shape."""
    n, _, h, w = images.shape
    area = torch.empty(n).uniform_(*scale, generator=generator)
    log_r = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = log_r.exp() * (h / w)  # the window's width / height in pixels is exp(log_r)
    fw = (area * aspect).sqrt().clamp(max=1.0)  # fractions of the width and height
    fh = (area / aspect).sqrt().clamp(max=1.0)
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - fw)  # centres, in grid units (-1..1)
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - fh)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = fw, cx, fh, cy
    theta = theta.to(images.device)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.clamp_(0, 255)
