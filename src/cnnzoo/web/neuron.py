"""What one neuron sees: for the value at (channel, y, x) of a layer's output on the page, its theoretical
receptive field (the analyzer's size, jump and start), its effective receptive field (the gradient of that
value with respect to the network's input) and, for a convolution or a fully connected layer, the
multiply-add that made it, with the actual numbers: Σ kernel · patch + bias (a convolution) or Σ w·x + b (a
fully connected unit), then the layer's activation, equals the value.

The forward pass is the model's own, with hooks that act only in the calling thread (other requests share
the model) and stop the forward once the shown layer has run. Gradients are taken with
``torch.autograd.grad`` with respect to the input only: the model's ``.grad`` fields are never touched.
"""

from __future__ import annotations

import math
import threading
import weakref

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import CnnzooError
from ..layers import ScaledTanh, SparseConv2d
from .images import png_data_url
from .session import Prepared, Session, ShownLayer, layer_rows

__all__ = ["neuron_view", "MAX_CHANNELS_SHOWN"]

# A VGG conv reads 512 maps of 3×3: the first few are written out term by term, the rest as one partial
# sum (the total stays exact). LeNet's layers read at most 16.
MAX_CHANNELS_SHOWN = 16
# A fully connected unit reads every input (LeNet-5's F6: 120, VGG's fc6: 25,088): the first ones are written
# out product by product, the rest as one partial sum.
MAX_INPUTS_SHOWN = 16
_SUMMARIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its analyzer summary
_SUMMARY_LOCK = threading.Lock()


class _Stop(Exception):
    """Raised by the hook after the shown layer: the rest of the network is not needed."""


def neuron_view(session: Session, p: Prepared, layer: str, channel: int, y: int, x: int) -> dict:
    """The neuron at (channel, y, x) of the page's row ``layer`` (its label or module name) for input ``p``."""
    model = session.model
    row = _find_row(model, layer)
    modules = dict(model.named_modules())
    head = modules[row.head]
    pre, out, conv_in, xin = _forward(model, modules, row, p.x)
    index = _index(out, channel, y, x, row.label)
    value = out[index]

    grad = torch.autograd.grad(value, xin, retain_graph=True)[0][0]
    grad_of = "value"
    if not bool(grad.any()) and pre is not out and pre.shape == out.shape:
        # A ReLU that is off passes no gradient: show what the layer's sum itself depends on.
        grad = torch.autograd.grad(pre[index], xin)[0][0]
        grad_of = "pre_activation"
    heat = grad.detach().abs().sum(0)
    h, w = heat.shape

    result = {
        "layer": row.label,
        "module": row.head,
        "node": row.node,
        "type": row.kind,
        "channel": channel,
        "y": y,
        "x": x,
        "shape": list(out.shape[1:]),
        "value": float(value.detach()),
        "input_size": [int(v) for v in xin.shape[1:]],
        "receptive_field": _receptive_field(session, row, y, x, h, w),
        "gradient": {
            "of": grad_of,
            "png": _heat_png(heat),
            "box": _nonzero_box(heat),
            "nonzero": int((heat > 0).sum()),
            "max": float(heat.max()),
        },
        "activation": [_describe(n, modules[n]) for n in row.followers],
        "dot_product": None,
    }
    if isinstance(head, (nn.Conv2d, SparseConv2d)) and out.dim() == 4:
        dot = _dot_product(head, conv_in[0], channel, y, x)
        after = _through_followers(modules, row, pre.detach(), index, dot["z"])
        result["dot_product"] = dot | {"after": after}
    elif isinstance(head, nn.Linear) and out.dim() == 2:
        dot = _linear_product(head, conv_in[0], channel)
        after = _through_followers(modules, row, pre.detach(), index, dot["z"])
        result["dot_product"] = dot | {"after": after}
    return result


def _find_row(model: nn.Module, layer: str) -> ShownLayer:
    rows = layer_rows(model)
    for r in rows:
        if layer in (r.label, r.head, r.node):
            return r
    names = ", ".join(r.label for r in rows)
    raise CnnzooError(f"no layer {layer[:80]!r} on this page: the layers are {names}")


def _forward(model: nn.Module, modules: dict, row: ShownLayer, x: torch.Tensor):
    """Run ``model`` on a copy of ``x`` that requires a gradient, up to the row's last module.

    Returns the head's output (before its activation; a differentiable clone, taken before an in-place
    ReLU overwrites it), the row's output, the head's input and the input tensor."""
    me = threading.get_ident()
    seen: dict[str, torch.Tensor] = {}

    def on_head(module, inputs, output):
        if threading.get_ident() == me and "pre" not in seen:
            seen["in"], seen["pre"] = inputs[0].detach(), output.clone()

    def on_node(module, inputs, output):
        if threading.get_ident() == me and "pre" in seen:
            seen["out"] = output
            raise _Stop

    xin = x.detach().clone().requires_grad_(True)
    hooks = [
        modules[row.head].register_forward_hook(on_head),
        modules[row.node].register_forward_hook(on_node),
    ]
    try:
        with torch.enable_grad():
            model(xin)
    except _Stop:
        pass
    finally:
        for h in hooks:
            h.remove()
    if "out" not in seen:
        raise CnnzooError(f"layer {row.label} did not run in the forward pass")
    pre = seen["pre"] if row.node != row.head else seen["out"]
    return pre, seen["out"], seen["in"], xin


def _index(out: torch.Tensor, channel: int, y: int, x: int, label: str) -> tuple[int, ...]:
    if out.dim() == 4:
        c, h, w = out.shape[1:]
        if not (0 <= channel < c and 0 <= y < h and 0 <= x < w):
            raise CnnzooError(f"{label} is {c}×{h}×{w}: no neuron at channel {channel}, y {y}, x {x}")
        return (0, channel, y, x)
    units = out[0].numel()
    if not (0 <= channel < units and y == 0 and x == 0):
        raise CnnzooError(f"{label} has {units} units: no unit {channel} (y and x must be 0)")
    return (0, channel) if out.dim() == 2 else (0, *np.unravel_index(channel, tuple(out.shape[1:])))


def _summary(session: Session):
    from ..analysis.summary import summary

    with _SUMMARY_LOCK:
        found = _SUMMARIES.get(session.model)
        if found is None:
            found = _SUMMARIES[session.model] = summary(session.model, session.input_size)
        return found


def _receptive_field(session: Session, row: ShownLayer, y: int, x: int, h: int, w: int) -> dict | None:
    """The analyzer's receptive field of the row's output, placed at (y, x): the box in input pixels
    (``box``: top, left, bottom, right, bottom/right exclusive), and the same box clipped to the image."""
    layers = {layer.name: layer for layer in _summary(session).layers}
    found = layers.get(row.node) or layers.get(row.head)
    rf = getattr(found, "receptive_field", None)
    if rf is None:
        return None
    (sh, sw), (jh, jw), (th, tw) = rf.size, rf.jump, rf.start
    top, left = th + y * jh - sh / 2, tw + x * jw - sw / 2
    box = [top, left, top + sh, left + sw]
    clipped = [
        max(0, math.floor(box[0])),
        max(0, math.floor(box[1])),
        min(h, math.ceil(box[2])),
        min(w, math.ceil(box[3])),
    ]
    return {"size": [sh, sw], "jump": [jh, jw], "start": [th, tw], "box": box, "clipped": clipped}


def _nonzero_box(heat: torch.Tensor) -> list[int] | None:
    ys, xs = torch.nonzero(heat > 0, as_tuple=True)
    if ys.numel() == 0:
        return None
    return [int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1]


def _heat_png(heat: torch.Tensor) -> str:
    """|gradient| as a black-red-yellow-white image, the strongest pixel white; exact zeros black."""
    t = (heat / (heat.max() or 1.0)).numpy()
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], axis=-1)
    return png_data_url(Image.fromarray((rgb * 255).round().astype(np.uint8)))


def _dot_product(conv: nn.Module, inp: torch.Tensor, channel: int, y: int, x: int) -> dict:
    """Σ over the connected input maps of kernel · patch, in float64, with every number."""
    weight = conv.dense_weight() if isinstance(conv, SparseConv2d) else conv.weight
    weight = weight.detach().double()
    kh, kw = weight.shape[-2:]
    (sy, sx), (dy, dx) = _pair(conv.stride), _pair(conv.dilation)
    pad_top, pad_left = _padding(conv, kh, kw, dy, dx)
    if getattr(conv, "padding_mode", "zeros") != "zeros":
        raise CnnzooError(f"padding mode {conv.padding_mode!r}: the formula view shows zero padding only")
    if isinstance(conv, SparseConv2d):
        connected = [(i, i) for i in conv.table[channel]]  # (input map, kernel slot in the dense weight)
    else:
        per_group = weight.shape[1]
        group = channel // (conv.out_channels // conv.groups)
        connected = [(group * per_group + j, j) for j in range(per_group)]
    rows = torch.arange(kh) * dy + y * sy - pad_top
    cols = torch.arange(kw) * dx + x * sx - pad_left
    inside = ((rows >= 0) & (rows < inp.shape[1]))[:, None] & ((cols >= 0) & (cols < inp.shape[2]))[None, :]
    terms, total, rest = [], 0.0, 0.0
    for n, (i, j) in enumerate(connected):
        patch = torch.zeros(kh, kw, dtype=torch.float64)
        r, c = rows.clamp(0, inp.shape[1] - 1), cols.clamp(0, inp.shape[2] - 1)
        patch[inside] = inp[i].double()[r][:, c][inside]
        kernel = weight[channel, j]
        partial = float((kernel * patch).sum())
        total += partial
        if n < MAX_CHANNELS_SHOWN:
            terms.append(
                {"input_channel": i, "kernel": kernel.tolist(), "patch": patch.tolist(), "sum": partial}
            )
        else:
            rest += partial
    bias = float(conv.bias[channel].detach()) if conv.bias is not None else 0.0
    return {
        "kind": "conv",
        "kernel_size": [kh, kw],
        "stride": [sy, sx],
        "padding": [pad_top, pad_left],
        "dilation": [dy, dx],
        "rows": rows.tolist(),
        "cols": cols.tolist(),
        "padded": (~inside).tolist(),
        "connected": [i for i, _ in connected],
        "table": "LeCun et al. 1998, Table I" if isinstance(conv, SparseConv2d) else None,
        "terms": terms,
        "rest": {"channels": len(connected) - len(terms), "sum": rest}
        if len(connected) > len(terms)
        else None,
        "sum": total,
        "bias": bias,
        "z": total + bias,
    }


def _linear_product(linear: nn.Linear, inp: torch.Tensor, unit: int) -> dict:
    """Σ_i w_i·x_i + b for one unit, in float64: the first inputs' weights and values, the rest summed."""
    w = linear.weight.detach().double()[unit]
    x = inp.detach().double().flatten()
    products = w * x
    shown = min(MAX_INPUTS_SHOWN, x.numel())
    bias = float(linear.bias[unit].detach()) if linear.bias is not None else 0.0
    total = float(products.sum())
    rest = {"inputs": x.numel() - shown, "sum": float(products[shown:].sum())} if x.numel() > shown else None
    return {
        "kind": "linear",
        "inputs": x.numel(),
        "weights": w[:shown].tolist(),
        "values": x[:shown].tolist(),
        "rest": rest,
        "sum": total,
        "bias": bias,
        "z": total + bias,
    }


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _padding(conv: nn.Module, kh: int, kw: int, dy: int, dx: int) -> tuple[int, int]:
    """Top and left zero padding; 'same' pads (d·(k − 1)) // 2 before, as PyTorch does."""
    if conv.padding == "valid":
        return 0, 0
    if conv.padding == "same":
        return dy * (kh - 1) // 2, dx * (kw - 1) // 2
    return _pair(conv.padding)


def _through_followers(modules: dict, row: ShownLayer, pre: torch.Tensor, index: tuple, z: float) -> float:
    """The row's activation, norm, … applied to the layer's own output with ``z`` at the neuron: per-map
    and cross-map layers (batch norm, LRN) see the other maps as the forward did."""
    t = pre.clone()
    t[index] = z
    with torch.no_grad():
        for name in row.followers:
            module = modules[name]
            t = module(t.clone())  # a clone: an in-place ReLU must not change ``pre``
    return float(t[index])


def _describe(name: str, module: nn.Module) -> dict:
    """A follower as a formula the page shows: f(z) with its constants."""
    if isinstance(module, nn.ReLU):
        formula = "max(0, z)"
    elif isinstance(module, ScaledTanh):
        formula = f"{module.amplitude:g}·tanh({module.slope:.4g}·z)"
    elif isinstance(module, nn.Tanh):
        formula = "tanh(z)"
    elif isinstance(module, nn.Sigmoid):
        formula = "1/(1 + e^(−z))"
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        formula = "γ·(z − μ)/√(σ² + ε) + β"
    elif isinstance(module, nn.Dropout):
        formula = "z"
    else:
        formula = f"{type(module).__name__}(z)"
    return {"name": name, "type": type(module).__name__, "formula": formula}
