"""VGG's dense evaluation (Simonyan & Zisserman 2014, §3.2): the fully convolutional form of a classifier
(:func:`cnnzoo.convert.to_fully_convolutional`) slid over whole images, with flips, scales or crops."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .card import card_of
from .convert import score_map_size, to_fully_convolutional
from .errors import ShapeError

__all__ = ["DenseResult", "dense_predict"]


@dataclass
class DenseResult:
    """What :func:`dense_predict` returns.

    scores: (N, classes) class posteriors, averaged over positions, flips and scales (rows sum to 1).
    maps:   per scale, (N, classes, h, w) posterior maps of the unflipped image (empty for multi-crop).
    """

    scores: torch.Tensor
    maps: list[torch.Tensor] = field(default_factory=list)
    scales: tuple[int, ...] = ()
    crops: int | None = None


def _posteriors(fc: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Softmax class posteriors at every position: (N, C, H, W) -> (N, classes, h, w), in batches."""
    return torch.cat([fc(chunk).softmax(dim=1) for chunk in x.split(batch_size)])


def _crop_views(x: torch.Tensor, crops: int, flip: bool, size: tuple[int, int]) -> list[torch.Tensor]:
    """1 (centre), 5 (corners + centre) or 10 (5 and their mirror images) crops of ``size``."""
    from torchvision.transforms.v2 import functional as TF

    if crops == 1:
        views = [TF.center_crop(x, list(size))]
    elif crops in (5, 10):
        views = list(TF.five_crop(x, list(size)))
    else:
        raise ValueError(f"crops must be 1, 5 or 10, not {crops}")
    if crops == 10 or flip:
        views += [v.flip(-1) for v in views]
    return views


def dense_predict(
    model: nn.Module,
    images: torch.Tensor,
    scales: tuple[int, ...] | None = None,
    flip: bool = True,
    crops: int | None = None,
    *,
    batch_size: int = 64,
) -> DenseResult:
    """VGG's dense evaluation of preprocessed float ``images`` (N, C, H, W) or (C, H, W).

    For each scale Q the images are resized so that their smaller side is Q; the fully convolutional net gives
    a class-score map; softmax posteriors are averaged over the map and with the horizontally flipped image's
    (``flip``), then over the scales. ``scales`` default: the training size (VGG's paper used e.g. 224, 256,
    288 for a net trained at 256). ``crops`` (1, 5 or 10) instead averages posteriors of crops at the training
    size taken from each rescaled image (the paper's multi-crop comparison); 5 crops with ``flip`` are 10.
    """
    from torchvision.transforms.v2 import functional as TF

    fc = model if getattr(model, "fully_convolutional", False) else to_fully_convolutional(model)
    fc.eval()
    x = images.unsqueeze(0) if images.dim() == 3 else images
    if not x.is_floating_point():
        raise ShapeError("dense_predict takes preprocessed float images (N, C, H, W), not uint8")
    c, th, tw = card_of(fc).input_size
    scales = tuple(scales) if scales else (min(th, tw),)
    total, maps = None, []
    with torch.inference_mode():
        for q in scales:
            xq = TF.resize(x, [int(q)], antialias=True)  # smaller side -> q, aspect kept
            if crops:
                if min(xq.shape[-2:]) < min(th, tw) or xq.shape[-2] < th or xq.shape[-1] < tw:
                    raise ShapeError(
                        f"scale {q} gives {tuple(xq.shape[-2:])}, smaller than the {th}×{tw} crops"
                    )
                views = _crop_views(xq, crops, flip, (th, tw))
                post = torch.stack([_posteriors(fc, v, batch_size).mean(dim=(2, 3)) for v in views]).mean(0)
            else:
                score_map_size(fc, tuple(xq.shape[1:]))  # a clear ShapeError if the scale is too small
                pmap = _posteriors(fc, xq, batch_size)  # (N, classes, h, w)
                maps.append(pmap)
                post = pmap.mean(dim=(2, 3))
                if flip:
                    post = (post + _posteriors(fc, xq.flip(-1), batch_size).mean(dim=(2, 3))) / 2
            total = post if total is None else total + post
    return DenseResult(scores=total / len(scales), maps=maps, scales=scales, crops=crops)
