"""The arithmetic of a layer string's layers: each one's output shape, parameters and multiply-accumulates,
worked out from the parsed tokens before any module exists, so a bad shape or a net over a cap is refused
with a caret under the token that causes it (:mod:`cnnzoo.models.layergrammar`)."""

from __future__ import annotations

from ..shapes import conv_output_size, pool_output_size
from .layererrors import layer_error

__all__ = ["infer", "has_bias"]

# Caps: a web request builds what it is given, so no string may ask for a huge net. VGG-16 at 224×224
# (138 M parameters, 15.5 G MACs, largest map 3.2 M values) is inside every one of them.
MAX_STRING_LENGTH = 2000  # characters
MAX_LAYERS = 300  # layers once repeats are expanded (activations and BN included)
MAX_REPEAT = 64  # the n of ``tok*n``
MAX_WIDTH = 16384  # maps of a convolution, units of a fully connected layer, input channels
MAX_INPUT_SIDE = 1024  # pixels
MAX_PARAMS = 200_000_000
MAX_MACS = 40_000_000_000  # multiply-accumulates of one image's forward pass
MAX_FEATURE_ELEMENTS = 1 << 26  # values in one layer's output for one image


def has_bias(layers, i: int) -> bool:
    """A conv or kN has a bias unless a BN follows it directly (the BN's shift does the bias's job)."""
    return not (i + 1 < len(layers) and layers[i + 1].kind == "bn")


def infer(
    size: tuple[int, int, int], layers, text: str, inputs: list | None = None
) -> tuple[int, int, tuple[int, ...]]:
    """(parameters, MACs, output shape) of ``layers`` on a ``size`` (C, H, W) input; raises
    :class:`LayerStringError` at the first layer whose input it cannot take, or where a cap is passed.
    ``inputs``, where given, gets each layer's input shape appended."""
    shape: tuple[int, ...] = size
    params = macs = 0
    for i, layer in enumerate(layers):
        start, end = layer.span
        if inputs is not None:
            inputs.append(shape)

        def fail(code: str, _start=start, _end=end, **values):
            raise layer_error(code, text, _start, _end - _start, **values)

        k = layer.kind
        spatial = len(shape) == 3
        if k in ("conv", "pool", "gpool", "res") and not spatial:
            fail("needs_maps", kind=k)
        if k in ("conv", "fc", "res") and not 1 <= layer.out <= MAX_WIDTH:
            fail("width_range", width=layer.out, max=MAX_WIDTH)
        if k == "conv":
            c, h, w = shape
            if layer.kernel < 1 or layer.stride < 1 or layer.dilation < 1 or layer.groups < 1:
                fail("conv_at_least_1")
            if c % layer.groups or layer.out % layer.groups:
                fail("groups_divide", groups=layer.groups, channels=c, out=layer.out)
            oh, ow = (
                conv_output_size(n, layer.kernel, layer.stride, layer.padding, layer.dilation) for n in (h, w)
            )
            if min(oh, ow) < 1:
                fail("conv_collapse", h=h, w=w)
            per = (c // layer.groups) * layer.kernel**2
            params += layer.out * per + (layer.out if has_bias(layers, i) else 0)
            macs += layer.out * oh * ow * per
            shape = (layer.out, oh, ow)
        elif k == "pool":
            c, h, w = shape
            if layer.kernel < 1 or layer.stride < 1:
                fail("pool_at_least_1")
            if 2 * layer.padding > layer.kernel:
                fail("pool_padding", padding=layer.padding, kernel=layer.kernel)
            oh, ow = (pool_output_size(n, layer.kernel, layer.stride, layer.padding) for n in (h, w))
            if min(oh, ow) < 1:
                fail("pool_collapse", h=h, w=w)
            shape = (c, oh, ow)
        elif k == "gpool":
            shape = (shape[0], 1, 1)
        elif k == "fc":
            n_in = 1
            for v in shape:
                n_in *= v
            params += n_in * layer.out + (layer.out if has_bias(layers, i) else 0)
            macs += n_in * layer.out
            shape = (layer.out,)
        elif k == "bn":
            params += 2 * shape[0]
        elif k == "drop" and not 0 <= layer.p < 1:
            fail("dropout_range", p=layer.p)
        elif k == "res":
            c, h, w = shape
            if layer.stride < 1:
                fail("res_stride")
            if layer.op == "A" and layer.out < c:
                fail("shortcut_a", channels=c, out=layer.out)
            oh, ow = (conv_output_size(n, 3, layer.stride, 1) for n in (h, w))
            o = layer.out
            params += 9 * c * o + 9 * o * o + 4 * o
            macs += oh * ow * (9 * c * o + 9 * o * o)
            if (layer.stride != 1 or c != o) and layer.op == "B":
                params += c * o + 2 * o
                macs += oh * ow * c * o
            shape = (o, oh, ow)
        elements = 1
        for v in shape:
            elements *= v
        if elements > MAX_FEATURE_ELEMENTS:
            fail("too_many_values", elements=elements, max=MAX_FEATURE_ELEMENTS)
        if params > MAX_PARAMS:
            fail("too_many_params", params=params, max=MAX_PARAMS)
        if macs > MAX_MACS:
            fail("too_many_macs", macs=macs, max=MAX_MACS)
    return params, macs, shape
