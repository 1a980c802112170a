"""Batched preprocessing and augmentation on uint8 image tensors: no PIL, no per-image Python loop.

Every function takes a whole batch ``(N, C, H, W)`` already on the training device, so one call costs a few
tensor ops whatever the batch size. The randomness comes from an explicit ``torch.Generator``: with the same
generator state the same images are cropped and flipped the same way, which is what makes ``--seed`` and
``--resume`` exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["fit_to_size", "random_crop", "random_hflip", "normalize", "to_float"]

# the deterministic part (pad/resize, /255, normalise) is the one preprocessing every user of a model shares
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
