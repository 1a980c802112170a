"""Layer strings as networks: ``build_layer_string("1x28x28-32C3-MP2-64C3-MP2-128C3-MP2-64N-10N")``.

:mod:`cnnzoo.models.layergrammar` reads the string into a :class:`NetSpec` (every shape and cap checked);
this module builds it as an ``nn.Sequential`` whose layers have readable names (``conv1``, ``relu1``,
``pool1``, …, ``fc1``) and the card every zoo model has, and reads a module back into a layer string
(:func:`to_layer_string`), from its layers, not from a stored copy of the text. docs/layer-strings.md has
the grammar.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

from torch import nn

from ..card import ModelCard, attach_card, card_of
from ..errors import LayerStringError, ShapeError
from .layererrors import layer_error
from .layergrammar import (
    ACTIVATIONS,
    GLOBAL_POOLS,
    POOLS,
    LayerSpec,
    NetSpec,
    Spelling,
    is_layer_string,
    parse_layer_string,
    spec_to_string,
)
from .layershapes import has_bias, infer
from .resnet import BasicBlock, ZeroPadShortcut

__all__ = [
    "LayerSpec",
    "LayerStringError",
    "LayerStringNet",
    "NetSpec",
    "build_from_spec",
    "build_layer_string",
    "is_layer_string",
    "module_names",
    "parse_layer_string",
    "spec_of_module",
    "to_layer_string",
]


class LayerStringNet(nn.Sequential):
    """The network of a layer string: its layers in order, named by kind and count (``conv1``, ``bn1``,
    ``relu1``, ``pool1``, ``res1``, ``flatten``, ``fc1``, ``drop1``, …). ``model.card.model`` is its
    canonical layer string, so ``create_model(model.card.model)`` rebuilds it."""

    def reset_classifier(self, num_classes: int) -> None:
        """A new, random last fully connected layer with ``num_classes`` outputs."""
        name, old = [(n, m) for n, m in self.named_children() if isinstance(m, nn.Linear)][-1]
        setattr(
            self,
            name,
            nn.Linear(old.in_features, num_classes, bias=old.bias is not None).to(old.weight.device),
        )
        card = card_of(self)
        if card is not None:
            attach_card(self, card.replace(model=to_layer_string(self), classes=(), dataset=""))


def _module(layer: LayerSpec, layers, i: int, channels: int) -> nn.Module:
    k = layer.kind
    if k == "conv":
        return nn.Conv2d(
            channels,
            layer.out,
            layer.kernel,
            layer.stride,
            layer.padding,
            layer.dilation,
            layer.groups,
            bias=has_bias(layers, i),
        )
    if k == "pool":
        return _built(POOLS[layer.op], layer.kernel, layer.stride, layer.padding)
    if k == "gpool":
        return _built(GLOBAL_POOLS[layer.op])
    if k == "fc":
        return nn.Linear(channels, layer.out, bias=has_bias(layers, i))
    if k == "bn":
        return nn.BatchNorm2d(channels)
    if k == "drop":
        return nn.Dropout(layer.p)
    if k == "res":
        return BasicBlock(channels, layer.out, layer.stride, shortcut=layer.op)
    return _built(ACTIVATIONS[layer.op])


def _built(spelling: Spelling, *args) -> nn.Module:
    return spelling.module(*args, **spelling.settings)


def _is(m: nn.Module, spelling: Spelling) -> bool:
    """Whether ``m`` is of the token's class with the token's settings (a pair of equal values counts as one)."""
    if type(m) is not spelling.module:
        return False
    for name, want in spelling.settings.items():
        value = getattr(m, name)
        if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1]:
            value = value[0]
        if value != want:
            return False
    return True


def module_names(layers) -> list[str]:
    """The child name of each layer in the built net, by kind (an activation by its name) and count:
    ``conv1``, ``relu1``, ``pool1``, ``relu6_1``, … (the ``flatten`` before the first kN is not a layer)."""
    counts: dict[str, int] = {}
    names = []
    for layer in layers:
        prefix = layer.op.lower() if layer.kind == "act" else layer.kind
        counts[prefix] = counts.get(prefix, 0) + 1
        names.append(f"{prefix}{'_' if prefix[-1].isdigit() else ''}{counts[prefix]}")
    return names


def build_from_spec(spec: NetSpec, num_classes: int | None = None) -> LayerStringNet:
    """The module of ``spec`` with its card; ``num_classes`` replaces the width of the last kN."""
    if num_classes is not None:
        spec = _with_classes(spec, num_classes)
    inputs: list = []
    infer(spec.input, spec.layers, spec.text, inputs)
    children: OrderedDict[str, nn.Module] = OrderedDict()
    names = module_names(spec.layers)
    for i, (layer, shape, name) in enumerate(zip(spec.layers, inputs, names, strict=True)):
        channels = shape[0]
        if layer.kind == "fc" and len(shape) == 3:
            children["flatten"] = nn.Flatten()
            channels = shape[0] * shape[1] * shape[2]
        flat_bn = layer.kind == "bn" and len(shape) == 1
        children[name] = nn.BatchNorm1d(channels) if flat_bn else _module(layer, spec.layers, i, channels)
    model = LayerStringNet(children)
    card = ModelCard(model=spec_to_string(spec), model_kwargs={}, input_size=spec.input)
    return attach_card(model, card)


def _with_classes(spec: NetSpec, num_classes: int) -> NetSpec:
    fcs = [i for i, layer in enumerate(spec.layers) if layer.kind == "fc"]
    if not fcs:
        if spec.output == (num_classes,):
            return spec
        raise layer_error("num_classes_needs_fc", spec.text, len(spec.text), 1, num_classes=num_classes)
    layers = list(spec.layers)
    layers[fcs[-1]] = replace(layers[fcs[-1]], out=int(num_classes))
    return parse_layer_string(spec_to_string(replace(spec, layers=tuple(layers))))


def build_layer_string(s: str, num_classes: int | None = None) -> LayerStringNet:
    """``build_from_spec(parse_layer_string(s), num_classes)``: the network a layer string writes.

    >>> net = build_layer_string("1x28x28-32C3-MP2-64C3-MP2-128C3-MP2-64N-10N")
    >>> sum(p.numel() for p in net.parameters()), list(dict(net.named_children()))[:4]
    (101578, ['conv1', 'relu1', 'pool1', 'conv2'])
    """
    return build_from_spec(parse_layer_string(s), num_classes)


def _flat_children(module: nn.Module):
    for name, child in module.named_children():
        if type(child) is nn.Sequential:
            yield from _flat_children(child)
        else:
            yield name, child


def _same(value) -> int | None:
    """The one value of an int or a pair of equal ints (a square kernel, stride, padding), else None."""
    if isinstance(value, int):
        return value
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and value[0] == value[1]
        and isinstance(value[0], int)
    ):
        return value[0]
    return None


def _spec_layer(name: str, m: nn.Module, model: str) -> LayerSpec | None:
    """The LayerSpec of one module (the child ``name`` of a ``model``); None for a flatten (implied); raises
    where the string cannot say it."""
    for op, spelling in ACTIVATIONS.items():
        if _is(m, spelling):
            return LayerSpec("act", op=op)
    if type(m) is nn.Flatten:
        return None
    if type(m) is nn.Conv2d and m.padding_mode == "zeros" and not isinstance(m.padding, str):
        kernel, stride, pad, dil = (_same(v) for v in (m.kernel_size, m.stride, m.padding, m.dilation))
        if None not in (kernel, stride, pad, dil):
            return LayerSpec("conv", m.out_channels, kernel, stride, pad, dil, m.groups)
    for op, spelling in POOLS.items():
        if _is(m, spelling):
            kernel, stride, pad = (_same(v) for v in (m.kernel_size, m.stride, m.padding))
            if None not in (kernel, stride, pad):
                return LayerSpec("pool", kernel=kernel, stride=stride, padding=pad, op=op)
    for op, spelling in GLOBAL_POOLS.items():
        if _is(m, spelling):
            return LayerSpec("gpool", op=op)
    if type(m) is nn.Linear:
        return LayerSpec("fc", out=m.out_features)
    if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) and m.affine and m.track_running_stats:
        return LayerSpec("bn")
    if type(m) is nn.Dropout:
        return LayerSpec("drop", p=float(m.p))
    if type(m) is BasicBlock:
        return LayerSpec(
            "res",
            out=m.conv2.out_channels,
            stride=m.stride,
            op="A" if isinstance(m.downsample, ZeroPadShortcut) else "B",
        )
    raise layer_error("no_token", "", 0, model=model, name=name, type=type(m).__name__)


def spec_of_module(module: nn.Module, input_size: tuple[int, int, int] | None = None) -> NetSpec:
    """Read a module made of layer-string layers (nested ``nn.Sequential`` allowed) into a NetSpec, checked
    like a parsed string; ``input_size`` (C, H, W) defaults to the module's card."""
    card = card_of(module)
    size = tuple(input_size) if input_size is not None else (card.input_size if card is not None else None)
    if size is None:
        raise ShapeError(
            f"{type(module).__name__} has no card: give input_size=(C, H, W) to write it as a layer string"
        )
    layers: list[LayerSpec] = []
    children = list(_flat_children(module)) if list(module.children()) else [("model", module)]
    for name, child in children:
        layer = _spec_layer(name, child, type(module).__name__)
        if layer is not None:
            layers.append(layer)
    convs_fcs = [c for _, c in children if type(c) in (nn.Conv2d, nn.Linear)]
    hosts = [i for i, layer in enumerate(layers) if layer.kind in ("conv", "fc")]
    for i, m in zip(hosts, convs_fcs, strict=True):
        if (m.bias is not None) != has_bias(layers, i):
            code = "bias_before_bn" if m.bias is not None else "no_bias_no_bn"  # (both in MESSAGES)
            raise layer_error(code, "", 0, model=type(module).__name__, index=i + 1, type=type(m).__name__)
    spec = NetSpec(tuple(size), tuple(layers))
    return parse_layer_string(spec_to_string(spec))


def to_layer_string(spec_or_module, input_size: tuple[int, int, int] | None = None) -> str:
    """The canonical layer string of a NetSpec, a layer string, or a module made of layer-string layers.

    >>> to_layer_string(build_layer_string("1x29x29-20C4-ReLU-MP2-40C5-MP3-150N-10N"))
    '1x29x29-20C4-MP2-40C5-MP3-150N-10N'
    """
    if isinstance(spec_or_module, str):
        spec_or_module = parse_layer_string(spec_or_module)
    if isinstance(spec_or_module, NetSpec):
        return spec_to_string(spec_or_module)
    return spec_to_string(spec_of_module(spec_or_module, input_size))
