"""VGG's test-time trick (Simonyan & Zisserman 2014, §3.2): fully connected layers become convolutions.

At test time VGG turns FC6 into a 7×7 convolution (7×7×512 -> 4096) and FC7, FC8 into 1×1 convolutions.
The weights are only reshaped — a Linear reading a flattened C×H×W map *is* an H×W convolution with C input
channels evaluated at one position. The converted net then takes any image at least as big as the training
size and returns a class-score map (N, classes, h, w) instead of a vector; averaging the map (and the
horizontally flipped image's, and several scales) gives the paper's "dense evaluation"
(:mod:`cnnzoo.dense`; :func:`cnnzoo.plots.save_heatmap` draws a score map).

The conversion is generic: the model is traced with :mod:`torch.fx`, the tensor shapes are found by a
fake-tensor forward (no real compute, no memory), and the graph is edited:

    features ... -> [AdaptiveAvgPool2d(7×7)] -> flatten -> Linear -> act -> Linear ...
    features ... ->                                    Conv k×k -> act -> Conv 1×1 ...

- the flatten (and a torchvision-style ``AdaptiveAvgPool2d`` that is the identity at the training size) go;
- a Linear reading the flattened map becomes a k×k conv (k×k = the map it reads), later ones 1×1 convs;
- element-wise layers (ReLU, Dropout, tanh, ...) stay; other per-sample layers after the flatten (LeNet-5's
  RBF output, BatchNorm1d) are applied at every position by :class:`PerPosition`.

Networks that already pool globally before their classifier (ResNet, GoogLeNet, the plain nets) have no
score map to compute: they raise :class:`~cnnzoo.errors.ConversionError` saying so.
"""

from __future__ import annotations

import copy
import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from ._torch_compat import fake_shapes
from .card import ModelCard, attach_card, card_of
from .errors import ConversionError, ShapeError
from .layers import ScaledTanh
from .shapes import smallest_input, spatial_size

__all__ = ["PerPosition", "score_map_size", "to_fully_convolutional"]

# Layers that act on each element (or are the identity at eval): they work unchanged on a map.
_RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish)
_SQUASHING = (nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, ScaledTanh)
_ELEMENTWISE_MODULES = (*_RELU_LIKE, *_SQUASHING, nn.Identity, nn.Dropout, nn.AlphaDropout)
_ELEMENTWISE_FUNCTIONS = {
    *(torch.relu, F.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.dropout, F.hardtanh),
    *(torch.sigmoid, torch.tanh, F.sigmoid, F.tanh, torch.exp, torch.neg),
    *(operator.add, operator.sub, operator.mul, operator.truediv, operator.neg),
}
_ELEMENTWISE_METHODS = set("relu sigmoid tanh exp neg clamp clamp_min add mul contiguous".split())
# Reductions over the class axis: dim=1 (or -1 on a (N, classes) tensor) is the channel axis of the map.
_CLASS_AXIS_FUNCTIONS = {F.softmax, F.log_softmax, torch.softmax, torch.log_softmax}
_CLASS_AXIS_METHODS = {"softmax", "log_softmax"}
_FLATTEN_FUNCTIONS = {torch.flatten, torch.reshape}
_FLATTEN_METHODS = {"flatten", "view", "reshape"}
_ADAPTIVE_MODULES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_ADAPTIVE_FUNCTIONS = {F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
_REDUCE_FUNCTIONS = {torch.mean, torch.amax, torch.sum}
_REDUCE_METHODS = {"mean", "amax", "sum", "max"}


class PerPosition(nn.Module):
    """Apply a per-sample ``(N, C) -> (N, K)`` layer at every position of a map: (N, C, H, W) -> (N, K, H, W).

    Used for layers after the flatten that are neither Linear nor element-wise, e.g. LeNet-5's RBF output
    (a distance to fixed centres) or BatchNorm1d; at eval they treat each row on its own, so running them
    on the H·W positions as extra rows is exact.
    """

    cnnzoo_per_position = True  # the analyzer counts the inner layer once per position (not once per image)

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        rows = self.module(x.permute(0, 2, 3, 1).reshape(n * h * w, c))  # (N·H·W, K)
        return rows.reshape(n, h, w, -1).permute(0, 3, 1, 2)  # (N, K, H, W)


class _LeafTracer(fx.Tracer):
    """Every module without children is a leaf: cnnzoo's own layers (RBF output, sparse C3) stay whole."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return next(m.children(), None) is None


class _ShapeRecorder(fx.Interpreter):
    """Runs the graph (under a fake-tensor mode) and stores each node's output shape in ``node.meta``."""

    def run_node(self, n: fx.Node):
        try:
            out = super().run_node(n)
        except Exception as e:  # noqa: BLE001 - any failure here is a shape problem at node n
            raise _NodeFailure(n, e) from e
        if isinstance(out, torch.Tensor):
            n.meta["shape"] = tuple(out.shape)
        return out


class _NodeFailure(Exception):
    def __init__(self, node: fx.Node, error: Exception) -> None:
        super().__init__(f"{node.target}: {error}")
        self.node, self.error = node, error


def _fake_forward(gm: fx.GraphModule, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shapes of every node for an input of ``shape``, without computing anything (fake tensors)."""
    param = next(gm.parameters(), None)
    dtype, device = (param.dtype, param.device) if param is not None else (torch.float32, None)
    with fake_shapes():
        out = _ShapeRecorder(gm).run(torch.empty(shape, dtype=dtype, device=device))
    return tuple(out.shape)


def _training_size(model: nn.Module, input_size) -> tuple[int, int, int]:
    """(C, H, W) at which the classifier's Linear layers were sized: ``input_size`` or the model card's."""
    card = card_of(model)
    default = card.input_size if card is not None else None
    if input_size is None:
        if default is None:
            raise ConversionError(
                f"{type(model).__name__} has no card giving its input size: pass input_size=(C, H, W), the size it was "
                "trained at"
            )
        return tuple(default)
    if isinstance(input_size, int) or len(input_size) == 2:
        if default is None:
            raise ConversionError("input_size needs the channel count: pass (C, H, W)")
        return (default[0], *spatial_size(input_size))
    return tuple(int(v) for v in input_size)


def _name(model: nn.Module) -> str:
    card = card_of(model)
    return card.model if card is not None else type(model).__name__


def _is_flatten(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), nn.Flatten)
    if node.op == "call_function":
        return node.target in _FLATTEN_FUNCTIONS
    return node.op == "call_method" and node.target in _FLATTEN_METHODS


def _global_pool_reason(gm: fx.GraphModule, node: fx.Node) -> str | None:
    """Why ``node`` pools the whole map (so the net has no score map), or None."""
    shape = node.meta.get("shape") or ()
    to_one = len(shape) == 2 or tuple(shape[2:]) == (1, 1)  # a vector, or a 1×1 map
    in_shape = node.args[0].meta.get("shape") if node.args and isinstance(node.args[0], fx.Node) else None
    # An adaptive pool to 1×1 reading a 1×1 map (cnnzoo's AlexNet built at a small size) is the identity.
    if _is_adaptive(gm, node) and tuple(shape[2:]) == (1, 1) and in_shape and tuple(in_shape[2:]) != (1, 1):
        what = (
            type(gm.get_submodule(node.target)).__name__ if node.op == "call_module" else node.target.__name__
        )
        return f"{node.name} ({what} to 1×1)"
    if to_one and node.op == "call_function" and node.target in _REDUCE_FUNCTIONS:
        return f"{node.name} ({node.target.__name__} over the map)"
    if to_one and node.op == "call_method" and node.target in _REDUCE_METHODS:
        return f"{node.name} (.{node.target}() over the map)"
    if node.op == "call_function" and node.target in (F.avg_pool2d, F.max_pool2d):
        # A kernel computed from the input's size (F.avg_pool2d(x, x.size(3))) is a global pool.
        if any(isinstance(a, fx.Node) for a in node.args[1:]):
            return f"{node.name} (pooling window = the whole map)"
    return None


def _is_adaptive(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), _ADAPTIVE_MODULES)
    return node.op == "call_function" and node.target in _ADAPTIVE_FUNCTIONS


def _is_elementwise(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), _ELEMENTWISE_MODULES)
    if node.op == "call_function":
        return node.target in _ELEMENTWISE_FUNCTIONS
    return node.op == "call_method" and node.target in _ELEMENTWISE_METHODS


def _adaptive_pool_before(gm: fx.GraphModule, flat: fx.Node, name: str) -> fx.Node | None:
    """Walk back from the flatten through element-wise ops to a torchvision-style adaptive pool (``avgpool``)
    if there is one. Global pooling on the way is an error."""
    node = flat.args[0]
    while True:
        reason = _global_pool_reason(gm, node)
        if reason:
            raise ConversionError(
                f"{name} already pools globally before its classifier ({reason}): it takes any input size and "
                "its classifier sees one pooled vector, so there is no class-score map to compute"
            )
        if _is_adaptive(gm, node):
            return node
        if _is_elementwise(gm, node) and isinstance(node.args[0], fx.Node):
            node = node.args[0]
            continue
        return None


def _linear_to_conv(
    linear: nn.Linear, map_chw: tuple[int, int, int], fold_hw: tuple[int, int] | None
) -> nn.Conv2d:
    """A Linear over a flattened (C, H, W) map -> an H×W conv with C input channels, same weights.

    torch.flatten of NCHW orders features c·H·W + h·W + w, so weight (out, C·H·W) views as (out, C, H, W).
    ``fold_hw``: the map was a 1×1 map replicated to H×W by an adaptive pool (torchvision VGG at 32×32):
    every position sees the same value, so the H×W kernel sums to a 1×1 kernel.
    """
    c, h, w = map_chw
    weight = linear.weight.detach().reshape(linear.out_features, c, h, w)
    if fold_hw is not None:
        weight = weight.sum(dim=(2, 3), keepdim=True)
    kh, kw = weight.shape[-2:]
    conv = nn.Conv2d(c, linear.out_features, (kh, kw), bias=linear.bias is not None)
    conv = conv.to(device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    conv.weight.requires_grad_(linear.weight.requires_grad)
    return conv


def _reads_flat(node: fx.Node, flat: fx.Node, gm: fx.GraphModule) -> bool:
    """Does ``node``'s input come straight from the flatten (through element-wise ops only)?"""
    src = node.args[0]
    while src is not flat and isinstance(src, fx.Node) and _is_elementwise(gm, src):
        src = src.args[0]
    return src is flat


def _descendants(node: fx.Node) -> set[fx.Node]:
    seen, todo = set(), [node]
    while todo:
        for user in todo.pop().users:
            if user not in seen:
                seen.add(user)
                todo.append(user)
    return seen


def _convert_head(gm: fx.GraphModule, flat: fx.Node, name: str) -> None:
    """Rewrite one flatten -> classifier head in place (see the module docstring)."""
    adaptive = _adaptive_pool_before(gm, flat, name)
    map_chw = tuple(flat.args[0].meta["shape"][1:])  # what the flatten reads, e.g. (512, 7, 7)
    fold_hw = None
    if adaptive is not None:
        in_hw = adaptive.args[0].meta["shape"][2:]
        out_hw = adaptive.meta["shape"][2:]
        if in_hw == (1, 1) and out_hw != (1, 1):
            fold_hw = out_hw  # replication of a 1×1 map: fold into a 1×1 kernel
        elif in_hw != out_hw:
            raise ConversionError(
                f"{name}: {adaptive.name} (adaptive pooling) resizes the {in_hw[0]}×{in_hw[1]} feature map "
                f"to {out_hw[0]}×{out_hw[1]} at this input size; convert at the size the classifier was trained "
                "for, where it is the identity (input_size=...)"
            )
        adaptive.replace_all_uses_with(adaptive.args[0])  # identity at the training size: drop it
        gm.graph.erase_node(adaptive)
    region = _descendants(flat)
    for node in list(gm.graph.nodes):
        if node not in region or node.op == "output":
            continue
        if node.op == "call_module":
            module = gm.get_submodule(node.target)
            if isinstance(module, nn.Linear):
                if _reads_flat(node, flat, gm):
                    conv = _linear_to_conv(module, map_chw, fold_hw)
                else:
                    conv = _linear_to_conv(module, (module.in_features, 1, 1), None)
                _set_submodule(gm, node.target, conv)
            elif not isinstance(module, _ELEMENTWISE_MODULES):
                _set_submodule(gm, node.target, PerPosition(module))
        elif node.op in ("call_function", "call_method"):
            if node.target in _CLASS_AXIS_FUNCTIONS or node.target in _CLASS_AXIS_METHODS:
                dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
                if dim not in (1, -1):
                    raise ConversionError(f"{name}: {node.name} reduces over dim={dim}, not the class axis")
                node.args = (node.args[0],)
                node.kwargs = {**node.kwargs, "dim": 1}  # the class axis of (N, classes, h, w)
            elif not _is_elementwise(gm, node) and not (node.op == "call_method" and node.target == "size"):
                raise ConversionError(
                    f"{name}: cannot convert {node.name} ({getattr(node.target, '__name__', node.target)}) after "
                    "the flatten to work on a map"
                )
    flat.replace_all_uses_with(flat.args[0])
    gm.graph.erase_node(flat)


def _set_submodule(gm: fx.GraphModule, target: str, module: nn.Module) -> None:
    """Replace the submodule at dotted path ``target`` (same name: state_dict keys stay torchvision's)."""
    parent_name, _, leaf = target.rpartition(".")
    setattr(gm.get_submodule(parent_name) if parent_name else gm, leaf, module)


def to_fully_convolutional(model: nn.Module, input_size=None) -> nn.Module:
    """A copy of ``model`` whose classifier is convolutional: FC over a k×k map -> k×k conv, later FCs -> 1×1.

    ``input_size`` (C, H, W), (H, W) or int: the size the classifier was built for (default: the input size
    on the model's card). At that size the result's output is (N, classes, 1, 1) and equals the
    original's; bigger inputs give (N, classes, h, w) score maps. The original model is untouched.
    """
    if getattr(model, "fully_convolutional", False):
        return copy.deepcopy(model)
    name = _name(model)
    c, h, w = _training_size(model, input_size)
    work = copy.deepcopy(model)  # the graph module reuses these submodules: never the caller's
    try:
        graph = _LeafTracer().trace(work)
    except Exception as e:  # noqa: BLE001 - fx raises many kinds (TraceError, TypeError, ...)
        raise ConversionError(
            f"{name}: cannot trace the model to convert it ({type(e).__name__}: {e})"
        ) from e
    gm = fx.GraphModule(work, graph, class_name=f"FullyConv{type(model).__name__}")
    try:
        out_shape = _fake_forward(gm, (1, c, h, w))
    except _NodeFailure as e:
        raise ShapeError(f"{name}: input {c}×{h}×{w} fails at layer {e.node.target}: {e.error}") from None

    shapes = {n: n.meta.get("shape") for n in gm.graph.nodes}
    flats = [
        n
        for n in gm.graph.nodes
        if shapes[n] is not None
        and len(shapes[n]) == 2
        and n.args
        and isinstance(n.args[0], fx.Node)
        and shapes.get(n.args[0]) is not None
        and len(shapes[n.args[0]]) == 4
    ]
    if not flats:
        raise ConversionError(
            f"{name}: no layer turns a feature map into a vector (no flatten) — nothing to convert"
        )
    for flat in flats:
        reason = _global_pool_reason(gm, flat)
        if reason:
            raise ConversionError(
                f"{name} already pools globally before its classifier ({reason}): it takes any input size and "
                "its classifier sees one pooled vector, so there is no class-score map to compute"
            )
        if not _is_flatten(gm, flat):
            raise ConversionError(
                f"{name}: {flat.name} turns the map into a vector in a way cnnzoo cannot convert"
            )
        _convert_head(gm, flat, name)

    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    # Self-check at the training size: (N, classes, 1, 1) where the original gave (N, classes).
    new_shape = _fake_forward(gm, (1, c, h, w))
    if new_shape != (*out_shape, 1, 1):
        raise ConversionError(f"{name}: converted output is {new_shape}, expected {(*out_shape, 1, 1)}")
    gm.train(model.training)
    # The converted graph keeps the card (the analyzer, dense_predict and checkpoints read it), at the size
    # its classifier was built for.
    card = card_of(model)
    attach_card(
        gm, card.replace(input_size=(c, h, w)) if card is not None else ModelCard(name, input_size=(c, h, w))
    )
    gm.fully_convolutional = True
    return gm


def _smallest_side(gm: fx.GraphModule, c: int, h: int, w: int, axis: int) -> int:
    """Smallest H (axis 0) or W (axis 1) that still gives a score map (the other side at the training size)."""

    def works(side: int) -> bool:
        try:
            _fake_forward(gm, (1, c, side, w) if axis == 0 else (1, c, h, side))
        except _NodeFailure:
            return False
        return True

    return smallest_input(works, start=(h, w)[axis])


def score_map_size(model: nn.Module, input_size) -> tuple[int, int]:
    """(h, w) of the class-score map the fully convolutional form of ``model`` gives for ``input_size``
    ((C, H, W), (H, W) or int). Inputs smaller than the smallest that works raise ShapeError."""
    fc = model if getattr(model, "fully_convolutional", False) else to_fully_convolutional(model)
    c, th, tw = card_of(fc).input_size
    if isinstance(input_size, int) or len(input_size) == 2:
        input_size = (c, *spatial_size(input_size))
    c, h, w = (int(v) for v in input_size)
    try:
        return tuple(_fake_forward(fc, (1, c, h, w))[-2:])
    except _NodeFailure as e:
        small_h = _smallest_side(fc, c, th, tw, 0)
        small_w = _smallest_side(fc, c, th, tw, 1)
        raise ShapeError(
            f"{_name(fc)} (fully convolutional): input {c}×{h}×{w} is too small, the map vanishes at layer "
            f"{e.node.target}; the smallest input that works is {c}×{small_h}×{small_w}"
        ) from None
