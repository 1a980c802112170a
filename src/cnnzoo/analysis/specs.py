"""What the analyzer knows about a leaf layer without running it, computed once per layer kind.

A :class:`LeafSpec` holds a leaf's sliding window and its description, its shape rule, its cost rule and its
checks; layers of torch.nn's own classes with equal hyper-parameters share one (ResNet-152's 364 leaves have
33 kinds), across analyses too. Shapes by rule cover plain convs and pools (the arithmetic), normalisation
and activations (the input's shape), linear layers and adaptive pools: PyTorch's meta kernels for these are
Python decompositions (batch norm alone was ~75% of a ResNet-152 run). The tests check every shape against a
real forward.
"""

from __future__ import annotations

from dataclasses import astuple

from torch import nn

from .._torch_compat import PARAMETERS, nn_constants
from .rules import cost_rule, has_cost_rule, window_of

__all__ = ["LeafSpec", "leaf_spec", "shape_rule", "ADAPTIVE", "SAME", "ARITHMETIC", "GENERAL"]

# -- which layers the tracer does not need to run ------------------------------------------------------

# Shape-keeping layers: normalisation (its meta kernels are Python decompositions), activations, dropout
# (the analysis runs in eval mode) and Identity. Recognised by their forward: a subclass that overrides it
# may change the shape, and then runs for real.
_SHAPE_KEEPING = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LocalResponseNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.Tanh,
    nn.Sigmoid,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
)
_SHAPE_KEEPING_FORWARDS = {cls.forward for cls in _SHAPE_KEEPING}
# Plain convs and pools: their output shape is the (tested) arithmetic's. Only these exact classes: a
# subclass may compute differently (weight standardisation, say) in a forward or a helper it overrides.
_SHAPE_ARITHMETIC = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def shape_rule(module: nn.Module) -> str | None:
    """How the analyzer knows this leaf's output shape without running it (None: it runs it):
    "arithmetic" (plain conv/pool), "same" (normalisation, activations), "linear" (last dim ->
    out_features), "adaptive" (adaptive pools: the requested size). PyTorch's meta kernels for these are
    Python decompositions: a meta Linear or adaptive pool alone costs ~2 ms."""
    d = module.__dict__
    if "forward" in d:
        return None
    cls = type(module)
    if cls.forward in _SHAPE_KEEPING_FORWARDS:
        return "same"
    if cls in _SHAPE_ARITHMETIC and not d.get("return_indices") and not isinstance(d["padding"], str):
        return "arithmetic"  # not 'same' padding: it may pad unevenly, and the real kernel knows how
    if cls is nn.Linear:
        return "linear"
    if cls in ADAPTIVE and not d.get("return_indices"):
        return "adaptive"
    return None


SAME, ARITHMETIC, GENERAL = "same", "arithmetic", "general"  # a leaf's path (LeafSpec.path)


class LeafSpec:
    """What a leaf's rows need to know about it that does not change between calls: its window and
    its description, the shape rule, the cost rule, the checks."""

    def __init__(self, module: nn.Module) -> None:
        d = module.__dict__  # plain attributes; Module.__getattr__ on a missing one costs an exception
        cls = type(module)
        self.type = cls.__name__
        self.forward = cls.forward  # the class's own forward (called with the module)
        self.adaptive = isinstance(module, ADAPTIVE)
        self.window = window = None if self.adaptive else window_of(module)
        self.kernel = window.describe() if window else ""
        self.in_channels = d.get("in_channels")
        self.out_channels = d.get("out_channels")
        self.is_linear = isinstance(module, nn.Linear)
        self.in_features = d["in_features"] if self.is_linear else None
        self.out_features = d.get("out_features")
        self.is_flatten = isinstance(module, nn.Flatten)
        self.cost = cost_rule(module)
        self.known = has_cost_rule(module)  # else its cost is what its forward runs (analysis/dispatch.py)
        # (macs, flops, connections, flops_per_input, connections_per_input, per): CostRule's fields in order
        self.coefficients = astuple(self.cost)
        self.rule = shape_rule(module)
        size = d.get("output_size")  # adaptive pools: an int, or a pair whose None keeps the input's size
        self.output_hw = (size, size) if isinstance(size, int) else tuple(size) if size is not None else None
        # The short paths of _leaf_call: a shape-keeping layer, and a plain conv/pool in floor mode on a 4-D
        # map (its geometry flat, for the inlined output-size formula).
        if self.rule == "same":
            self.path = SAME
        elif self.rule == "arithmetic" and not window.ceil_mode:
            self.path = ARITHMETIC
            self.geometry = (
                *window.kernel,
                *window.stride,
                *window.padding,
                *window.dilation,
            )  # kh, kw, sh, …
        else:
            self.path = GENERAL

    @staticmethod
    def key(module: nn.Module) -> tuple | None:
        """Layers of torch.nn's own classes that agree on every hyper-parameter (their ``__constants__``)
        and on having a bias share a spec (ResNet-152's 364 leaves have 33 kinds). None: not shareable."""
        cls = type(module)
        names = _CONSTANTS.get(cls, False)
        if names is False:  # first sight of this class: torch.nn's own, or not shareable
            names = _CONSTANTS[cls] = nn_constants(cls)
        if names is None:
            return None
        d = module.__dict__
        key = (cls, "forward" in d, d[PARAMETERS].get("bias") is None, *map(d.get, names))
        try:
            hash(key)
        except TypeError:  # an unhashable hyper-parameter (say, a list)
            return None
        return key


_CONSTANTS: dict[type, tuple[str, ...] | None] = {}  # class -> its hyper-parameter names (None: no sharing)
# Specs by key, kept across analyses: a spec is a function of its key alone (class, hyper-parameters, bias)
_SPECS: dict[tuple, LeafSpec] = {}


def leaf_spec(module: nn.Module) -> LeafSpec:
    """The spec of a leaf: shared with every torch.nn layer of equal hyper-parameters seen before."""
    key = LeafSpec.key(module)
    spec = _SPECS.get(key) if key is not None else None
    if spec is None:
        spec = LeafSpec(module)
        if key is not None:
            if len(_SPECS) >= 4096:  # bounded: hyper-parameters seen across many analyses
                _SPECS.clear()
            _SPECS[key] = spec
    return spec
