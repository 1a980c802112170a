"""Shapes, at the bottom of the package (it imports only :mod:`cnnzoo.errors`): the output-size arithmetic
of convolution and pooling and its inverse, the one parser of input sizes (:func:`parse_input_size` for
``C×H×W``, :func:`spatial_size` for a builder's ``input_size``) and the one smallest-input search
(:func:`smallest_input`). The models, the analyzer and the fully convolutional conversion all use these.

PyTorch's rule (the shape formulas of ``torch.nn.Conv2d`` and ``torch.nn.MaxPool2d``), for one spatial
dimension::

    out = floor((n + 2p - d·(k - 1) - 1) / s) + 1          # d = 1:  floor((n + 2p - k) / s) + 1

``ceil_mode=True`` (pooling) rounds up instead, but a window may not *start* in the right padding.
Padding may be an int, ``"valid"`` (no padding) or ``"same"`` (TensorFlow/Keras: ``out = ceil(n / s)``,
which for stride 1 is PyTorch's ``padding="same"``).

The worked examples of the course notes, checked here as doctests:

AlexNet (Ng's course), 227×227 input: conv 11×11 stride 4 → 55; max-pool 3×3 stride 2 → 27;
conv 5×5 'same' → 27; pool → 13; three conv 3×3 'same' → 13; pool → 6.

>>> n = conv_output_size(227, 11, stride=4); n
55
>>> n = pool_output_size(n, 3, stride=2); n
27
>>> conv_output_size(27, 5, padding="same")
27
>>> pool_output_size(27, 3, stride=2), pool_output_size(13, 3, stride=2)
(13, 6)

VGG-16 (the VGG paper): (224 + 2·1 − 3)/1 + 1 = 224, and each 2×2 max-pool halves: 224 → 112 → 56 → 28 → 14 → 7.

>>> conv_output_size(224, 3, padding=1)
224
>>> [pool_output_size(n, 2, stride=2) for n in (224, 112, 56, 28, 14)]
[112, 56, 28, 14, 7]

LeNet-5 (the 1998 paper, Fig. 2): 32 → C1 28 → S2 14 → C3 10 → S4 5 → C5 1.

>>> conv_output_size(32, 5), pool_output_size(28, 2, stride=2), conv_output_size(14, 5), conv_output_size(5, 5)
(28, 14, 10, 1)

Ng's course notes write ``floor((n - f + 1) / s)``; that is a ceiling in disguise — it gives 55 for AlexNet's conv1 only
because (227 − 11 + 1)/4 = 54.25 is then rounded *up*. The PyTorch formula above is the one to use.

The inverse: the smallest input that still gives an output of at least ``out`` (default 1):

>>> min_input_size(5)                      # a 5×5 'valid' conv needs 5 pixels
5
>>> min_input_size(3, stride=2, padding=1)  # padding lets a 3×3 window start in the border
1
>>> min_input_size(11, stride=4, out=55)    # AlexNet's conv1 needs 227 for 55 outputs
227
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from .errors import ShapeError

Padding = int | str

__all__ = [
    "conv_output_size",
    "pool_output_size",
    "same_padding",
    "min_input_size",
    "min_input_for_chain",
    "output_shape_2d",
    "pair",
    "parse_input_size",
    "spatial_size",
    "smallest_input",
]


def pair(v: int | Sequence[int]) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3, 5) -> (3, 5)``."""
    if isinstance(v, int):
        return (v, v)
    t = tuple(v)
    if len(t) != 2:
        raise ValueError(f"expected an int or a pair, got {v!r}")
    return (int(t[0]), int(t[1]))


def same_padding(n: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' padding ``(before, after)`` for an input of size ``n`` (the extra pixel goes after).

    >>> same_padding(224, 3), same_padding(28, 5), same_padding(224, 7, stride=2)
    ((1, 1), (2, 2), (2, 3))
    """
    effective = dilation * (kernel - 1) + 1
    out = math.ceil(n / stride)
    total = max((out - 1) * stride + effective - n, 0)
    return total // 2, total - total // 2


def _explicit_padding(n: int, kernel: int, stride: int, padding: Padding, dilation: int) -> tuple[int, int]:
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            return same_padding(n, kernel, stride, dilation)
        raise ValueError(f"padding must be an int, 'same' or 'valid', not {padding!r}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    return padding, padding


def conv_output_size(
    n: int,
    kernel: int,
    stride: int = 1,
    padding: Padding = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length along one dimension; ``<= 0`` means the map has collapsed.

    >>> conv_output_size(28, 5, padding=2), conv_output_size(28, 3, stride=2, padding="same")
    (28, 14)
    >>> conv_output_size(10, 3, dilation=2)   # effective kernel 5
    6
    >>> conv_output_size(4, 5)                # too small: collapses
    0
    """
    if kernel < 1 or stride < 1 or dilation < 1:
        raise ValueError("kernel, stride and dilation must be >= 1")
    before, after = _explicit_padding(n, kernel, stride, padding, dilation)
    span = n + before + after - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1 if span >= 0 else 0
    # ceil_mode lets the last window hang over the right edge (so a 1-pixel map still pools with k=2)...
    out = -(-span // stride) + 1
    # ...but, in PyTorch, it must start inside the input or the left padding.
    if (out - 1) * stride >= n + before:
        out -= 1
    return max(out, 0)


def pool_output_size(
    n: int,
    kernel: int,
    stride: int | None = None,
    padding: Padding = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Same arithmetic as a convolution; the stride defaults to the kernel size, as in PyTorch and Keras.

    >>> pool_output_size(55, 3, stride=2), pool_output_size(25, 3), pool_output_size(7, 2, ceil_mode=True)
    (27, 8, 4)
    """
    return conv_output_size(n, kernel, stride or kernel, padding, dilation, ceil_mode)


def output_shape_2d(
    hw: Sequence[int],
    kernel: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Padding | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
) -> tuple[int, int]:
    """(H, W) after a 2-D conv or pool with int-or-pair hyper-parameters.

    >>> output_shape_2d((227, 227), 11, 4), output_shape_2d((32, 40), (5, 3), padding=(0, 1))
    ((55, 55), (28, 40))
    """
    k, s, d = pair(kernel), pair(stride), pair(dilation)
    p = (padding, padding) if isinstance(padding, (int, str)) else pair(padding)
    return tuple(conv_output_size(hw[i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(2))  # type: ignore[return-value]


def min_input_size(
    kernel: int,
    stride: int = 1,
    padding: Padding = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
    out: int = 1,
) -> int:
    """Smallest input length whose output length is at least ``out``.

    Floor mode inverts exactly: ``n >= (out - 1)·s + d·(k - 1) + 1 - 2p``. 'same' padding gives
    ``out = ceil(n / s)``, so ``n = (out - 1)·s + 1``. ceil_mode is searched (it is not monotone in
    closed form because of PyTorch's last-window rule, but is monotone in n).
    """
    if out < 1:
        raise ValueError("out must be >= 1")
    if padding == "same":
        return (out - 1) * stride + 1
    p = 0 if padding == "valid" else int(padding)
    n = max(1, (out - 1) * stride + dilation * (kernel - 1) + 1 - 2 * p)
    if ceil_mode:  # ceil can only help: step down while it still works
        while n > 1 and conv_output_size(n - 1, kernel, stride, p, dilation, True) >= out:
            n -= 1
    return n


def min_input_for_chain(layers: Sequence[dict], out: int = 1) -> int:
    """Smallest input length for a chain of conv/pool layers (dicts of ``min_input_size`` arguments),
    walking backwards from the last layer.

    >>> lenet = [dict(kernel=5), dict(kernel=2, stride=2), dict(kernel=5), dict(kernel=2, stride=2), dict(kernel=5)]
    >>> min_input_for_chain(lenet)   # LeNet-5's C5 needs a 5×5 map: 32×32 input
    32
    """
    need = out
    for layer in reversed(layers):
        need = min_input_size(out=need, **layer)
    return need


def spatial_size(size: int | Sequence[int]) -> tuple[int, int]:
    """A builder's ``input_size`` as (H, W): ``28``, ``(28, 28)`` and ``(1, 28, 28)`` all give ``(28, 28)``.

    >>> spatial_size(28), spatial_size((32, 40)), spatial_size((3, 224, 224))
    ((28, 28), (32, 40), (224, 224))
    """
    return pair(size) if isinstance(size, int) else pair(tuple(size)[-2:])


def parse_input_size(text: str | int | tuple | list) -> tuple[int, int, int]:
    """``"1x32x32"``, ``"3,224,224"``, ``(3, 224, 224)`` -> (C, H, W); ``"32"`` is not enough (no channels).

    >>> parse_input_size("1x32x32"), parse_input_size("3×224×224"), parse_input_size([3, 8, 8])
    ((1, 32, 32), (3, 224, 224), (3, 8, 8))
    """
    if isinstance(text, (tuple, list)):
        parts = list(text)
    else:
        parts = str(text).lower().replace("×", "x").replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise ShapeError(f"input size {text!r} is not of the form CxHxW, e.g. 1x32x32") from None
    if len(dims) == 2:
        raise ShapeError(f"input size {text!r} has no channel count: write CxHxW, e.g. 1x32x32 or 3x224x224")
    if len(dims) != 3 or min(dims) < 1:
        raise ShapeError(f"input size {text!r} must be three positive integers CxHxW, e.g. 3x224x224")
    if max(dims) > 1 << 16:
        raise ShapeError(f"input size {text!r} is too large (each dimension at most 65536)")
    return dims  # type: ignore[return-value]


def smallest_input(works: Callable[[int], bool], start: int, limit: int = 1 << 14) -> int | None:
    """The smallest side ``n >= 1`` for which ``works(n)``, for a ``works`` that is monotone in ``n`` (output
    sizes only grow with the input). ``start`` is a first guess (the size the model is built for); the search
    doubles it until it works, then bisects below. None when nothing up to ``limit`` works.

    >>> smallest_input(lambda n: conv_output_size(n, 11, stride=4) >= 55, start=224)
    227
    >>> smallest_input(lambda n: False, start=8, limit=64) is None
    True
    """
    hi = max(1, start)
    while not works(hi):
        hi *= 2
        if hi > limit:
            return None
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if works(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
