"""Receptive fields through ATen operations, for what the dispatcher-level counter sees run (functional
pools and convolutions, layers without a rule, transposed convolutions, upsampling).

An operation's output field is the merge of its tensor inputs' fields (concatenation, residual merges:
the larger wins), passed through its window where it has one: convolutions and pools (the field grows by
``(effective kernel − 1) · jump``, strides multiply the jump), transposed convolutions (each output reads at
most ``⌈k / s⌉`` inputs; the jump divides by the stride), upsampling (the jump divides by the scale;
bilinear and bicubic read 2 and 4 neighbours), adaptive pools (as a fixed window).
"""

from __future__ import annotations

import math

import torch

from .rules import Window, adaptive_window
from .schema import ReceptiveField

__all__ = ["field_through"]

_CONV = {"convolution", "_convolution"}
_POOLS = {"max_pool2d_with_indices", "max_pool2d", "avg_pool2d"}
_ADAPTIVE = {"adaptive_avg_pool2d", "_adaptive_avg_pool2d", "adaptive_max_pool2d"}
_UPSAMPLE_TAPS = {
    "upsample_nearest2d": 1,
    "_upsample_nearest_exact2d": 1,
    "upsample_bilinear2d": 2,
    "_upsample_bilinear2d_aa": 2,
    "upsample_bicubic2d": 4,
}


def pair(v) -> tuple[int, int]:
    """ATen's int lists ([2], [2, 2]) or an int as (H, W)."""
    v = [v] if isinstance(v, int) else list(v)
    return v[0], v[-1]


def _arg(args, i, default):
    return args[i] if len(args) > i and args[i] is not None else default


def _transposed(rf: ReceptiveField, k, s, p, d) -> ReceptiveField:
    """Output ``o`` of a transposed convolution reads input ``i`` where ``o + p − d·t = s·i`` for a tap
    ``t``: at most ``⌈(d(k−1)+1) / s⌉`` consecutive inputs apart by ``d/s`` … one per stride."""
    size, jump, start = [], [], []
    for a in (0, 1):
        reach = math.ceil((d[a] * (k[a] - 1) + 1) / s[a])  # inputs one output can read, as a span
        size.append(rf.size[a] + (reach - 1) * rf.jump[a])
        jump.append(rf.jump[a] / s[a])
        start.append(rf.start[a] + (p[a] - d[a] * (k[a] - 1) / 2) * rf.jump[a] / s[a])
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))


def field_through(name: str, args, out: torch.Tensor, rf: ReceptiveField) -> ReceptiveField:
    """The field of ``out`` for an operation ``name`` (ATen, without "aten.") on a 4-D first input whose
    field is ``rf``; operations without a window keep it."""
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if x is None or x.dim() != 4:
        return rf
    if name in _CONV:
        k = tuple(args[1].shape[2:])
        s, p, d = pair(_arg(args, 3, 1)), pair(_arg(args, 4, 0)), pair(_arg(args, 5, 1))
        if _arg(args, 6, False):
            return _transposed(rf, k, s, p, d)
        return rf.through(Window(k, s, p, d))
    if name in _POOLS:
        k = pair(args[1])
        s = pair(_arg(args, 2, None) or args[1])
        p = pair(_arg(args, 3, 0))
        d = pair(_arg(args, 4, 1)) if name != "avg_pool2d" else (1, 1)
        return rf.through(Window(k, s, p, d))
    if name in _ADAPTIVE:
        return rf.through(adaptive_window(tuple(x.shape[2:]), tuple(args[1])))
    taps = _UPSAMPLE_TAPS.get(name)
    if taps is not None:
        scale = [out.shape[2 + a] / x.shape[2 + a] for a in (0, 1)]
        return ReceptiveField(
            tuple(rf.size[a] + (taps - 1) * rf.jump[a] for a in (0, 1)),
            tuple(rf.jump[a] / scale[a] for a in (0, 1)),
            tuple(rf.start[a] - (scale[a] - 1) / (2 * scale[a]) * rf.jump[a] for a in (0, 1)),
        )
    return rf
