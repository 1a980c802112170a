"""Layer strings: a network written in one line, in the notation of Cireşan, Meier & Schmidhuber (2012).

They wrote their MNIST nets as ``1x29x29-20C4-MP2-40C5-MP3-150N-10N``: the input (channels × height ×
width), then ``kCs`` (k maps, s×s kernel), ``MPs``/``APs`` pooling and ``kN`` fully connected layers. This
module reads that notation, extended to padding, stride, dilation, groups, activations, BN, dropout, global
pooling and residual blocks (docs/layer-strings.md has the grammar), into a :class:`NetSpec`; it checks
every shape and the caps (:mod:`cnnzoo.models.layershapes`) before anything is built. A layer string is
data: it is matched against the token patterns here, never evaluated. The token table below (POOLS,
GLOBAL_POOLS, ACTIVATIONS, OPTIONS) is the one place where each token is spelled: the parser, the writer
(:func:`spec_to_string`) and :mod:`cnnzoo.models.layerstring`, which builds the module and reads a module
back, all read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import NamedTuple

from torch import nn

from .layererrors import layer_error
from .layershapes import MAX_INPUT_SIDE, MAX_LAYERS, MAX_REPEAT, MAX_STRING_LENGTH, MAX_WIDTH, infer

__all__ = [
    "ACTIVATIONS",
    "GLOBAL_POOLS",
    "OPTIONS",
    "POOLS",
    "LayerSpec",
    "NetSpec",
    "Spelling",
    "is_layer_string",
    "parse_layer_string",
    "spec_to_string",
]


class Spelling(NamedTuple):
    """How one layer is written and built: its token as the canonical string writes it (any case reads), the
    ``torch.nn`` class it builds, and the settings it builds that class with (beyond the token's own numbers);
    a module reads back as this token only where it has these settings."""

    token: str
    module: type[nn.Module]
    settings: dict


# The grammar's token table, the one source that the parser, the writer (spec_to_string) and
# cnnzoo.models.layerstring (which builds the modules and reads a module back) all read.
POOLS = {  # LayerSpec.op -> MPs / APs
    "max": Spelling("MP", nn.MaxPool2d, {"dilation": 1, "ceil_mode": False}),
    "avg": Spelling(
        "AP", nn.AvgPool2d, {"ceil_mode": False, "count_include_pad": True, "divisor_override": None}
    ),
}
GLOBAL_POOLS = {  # LayerSpec.op -> GAP / GMP (to 1×1)
    "avg": Spelling("GAP", nn.AdaptiveAvgPool2d, {"output_size": 1}),
    "max": Spelling("GMP", nn.AdaptiveMaxPool2d, {"output_size": 1}),
}
ACTIVATIONS = {  # LayerSpec.op (the canonical token) -> its spelling; "Id" means "no activation here"
    a.token: a
    for a in (
        Spelling("ReLU", nn.ReLU, {}),
        Spelling("Tanh", nn.Tanh, {}),
        Spelling("Sigmoid", nn.Sigmoid, {}),
        Spelling("GELU", nn.GELU, {"approximate": "none"}),
        Spelling("SiLU", nn.SiLU, {}),
        Spelling("ELU", nn.ELU, {"alpha": 1.0}),
        Spelling("LReLU", nn.LeakyReLU, {"negative_slope": 0.01}),  # PyTorch's default slope
        Spelling("ReLU6", nn.ReLU6, {}),
        Spelling("Id", nn.Identity, {}),
    )
}
OPTIONS = {  # kind -> its options, letter -> LayerSpec field, in the order the canonical string writes them
    "conv": {"p": "padding", "s": "stride", "d": "dilation", "g": "groups"},
    "pool": {"s": "stride", "p": "padding"},
    "res": {"s": "stride"},
}
SHORTCUT = "B"  # a residual block's shortcut where the token has no trailing A or B

_INT = r"(\d{1,6})"
_OPTS = r"((?:[a-z]\d{1,6})*)"
_TOKENS = [  # (kind, pattern); matched against one token, whole, ignoring case
    ("conv", re.compile(rf"{_INT}c{_INT}{_OPTS}", re.I)),
    ("pool", re.compile(rf"({'|'.join(s.token for s in POOLS.values())}){_INT}{_OPTS}", re.I)),
    ("gpool", re.compile(f"({'|'.join(s.token for s in GLOBAL_POOLS.values())})", re.I)),
    ("fc", re.compile(rf"{_INT}n", re.I)),
    ("bn", re.compile(r"bn", re.I)),
    ("drop", re.compile(r"d(0|0?\.\d{1,6})?", re.I)),
    # a block takes its own option letters only: anything else is not an R token
    ("res", re.compile(rf"r{_INT}((?:[{''.join(OPTIONS['res'])}]\d{{1,6}})?)(a|b)?", re.I)),
    ("act", re.compile("|".join(ACTIVATIONS), re.I)),
]
_INPUT = re.compile(r"(\d{1,6})x(\d{1,6})x(\d{1,6})", re.I)
_LOOKS_LIKE = re.compile(r"\s*\d+\s*x\s*\d+\s*x\s*\d+\s*(-|$)", re.I)


@dataclass(frozen=True)
class LayerSpec:
    """One layer. ``kind``: conv | pool | gpool | fc | bn | act | drop | res."""

    kind: str
    out: int = 0  # conv maps, fc units, res block channels
    kernel: int = 0  # conv / pool kernel side
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    op: str = ""  # pool/gpool: "max" | "avg"; act: canonical name; res: shortcut "A" | "B"
    p: float = 0.0  # dropout probability
    implicit: bool = field(
        default=False, compare=False
    )  # an activation the string implies (ReLU after a conv / hidden kN), not written
    span: tuple[int, int] = field(default=(0, 0), compare=False)  # [start, end) of its token in the text


@dataclass(frozen=True)
class NetSpec:
    """A parsed layer string: the input (C, H, W), the layers (implied activations included) and the
    figures worked out while checking it (parameters, MACs, output shape)."""

    input: tuple[int, int, int]
    layers: tuple[LayerSpec, ...]
    text: str = field(default="", compare=False)
    params: int = field(default=0, compare=False)
    macs: int = field(default=0, compare=False)
    output: tuple[int, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return spec_to_string(self)


def is_layer_string(s) -> bool:
    """True when ``s`` starts like a layer string (``CxHxW`` then ``-`` or the end): such an argument is read
    as one, so a mistake in it gets the caret error rather than "unknown model"."""
    return isinstance(s, str) and bool(_LOOKS_LIKE.match(s))


def _tokens(text: str):
    """(token, start) for each ``-``-separated token."""
    start = 0
    for part in text.split("-"):
        yield part, start
        start += len(part) + 1


def _default(kind: str, name: str, kernel: int) -> int:
    """What an option that is not written means: a pool's stride is its window, the rest LayerSpec's defaults."""
    return kernel if (kind, name) == ("pool", "stride") else _FIELD_DEFAULTS[name]


_FIELD_DEFAULTS = {f.name: f.default for f in fields(LayerSpec)}
_PARSE_OP = {  # kind -> the token as read (lower case) -> LayerSpec.op
    "pool": {s.token.lower(): op for op, s in POOLS.items()},
    "gpool": {s.token.lower(): op for op, s in GLOBAL_POOLS.items()},
    "act": {a.lower(): a for a in ACTIVATIONS},
}


def _options(kind: str, opts: str, text: str, start: int, kernel: int = 0) -> dict:
    """The fields of ``kind``'s options written as ``opts`` (at ``start`` in ``text``), defaults included."""
    letters = OPTIONS[kind]
    found: dict = {}
    for m in re.finditer(r"([a-z])(\d+)", opts, re.I):
        letter, pos = m.group(1).lower(), start + m.start()
        if letter not in letters:
            raise layer_error(
                "unknown_option", text, pos, len(m[0]), letter=letter, kind=kind, options=dict(letters)
            )
        name = letters[letter]
        if name in found:
            raise layer_error("option_twice", text, pos, len(m[0]), field=name, letter=letter)
        found[name] = int(m.group(2))
    return {name: found.get(name, _default(kind, name, kernel)) for name in letters.values()}


def _layer(token: str, text: str, start: int) -> LayerSpec:
    span = (start, start + len(token))
    for kind, pattern in _TOKENS:
        m = pattern.fullmatch(token)
        if m is None:
            continue
        if kind == "conv":
            opts = _options("conv", m.group(3), text, start + m.start(3))
            return LayerSpec("conv", out=int(m[1]), kernel=int(m[2]), span=span, **opts)
        if kind == "pool":
            k = int(m[2])
            opts = _options("pool", m.group(3), text, start + m.start(3), kernel=k)
            return LayerSpec("pool", kernel=k, op=_PARSE_OP["pool"][m[1].lower()], span=span, **opts)
        if kind == "gpool":
            return LayerSpec("gpool", op=_PARSE_OP["gpool"][m[1].lower()], span=span)
        if kind == "fc":
            return LayerSpec("fc", out=int(m[1]), span=span)
        if kind == "bn":
            return LayerSpec("bn", span=span)
        if kind == "drop":
            return LayerSpec("drop", p=float(m[1]) if m[1] else 0.5, span=span)
        if kind == "res":
            opts = _options("res", m.group(2), text, start + m.start(2))
            return LayerSpec("res", out=int(m[1]), op=(m[3] or SHORTCUT).upper(), span=span, **opts)
        return LayerSpec("act", op=_PARSE_OP["act"][token.lower()], span=span)
    if not token:
        raise layer_error("empty_layer", text, start, 1)
    raise layer_error("unknown_layer", text, start, len(token), token=token)


def _hosts(layers) -> set[int]:
    """The layers an activation belongs after: every convolution and fully connected layer but the last kN."""
    last_fc = max((i for i, x in enumerate(layers) if x.kind == "fc"), default=-1)
    return {i for i, x in enumerate(layers) if x.kind in ("conv", "fc") and i != last_fc}


def _relu_slot(kinds: list[str], i: int) -> int | None:
    """Rule 1 of the grammar for the host at ``i`` (``kinds``: every layer's kind, padded with two ""): the
    index its implied ReLU goes after (``i``, or its BN's), or None where an activation follows it there."""
    after = i + 1 if kinds[i + 1] == "bn" else i
    return None if kinds[after + 1] == "act" else after


def _with_activations(layers: list[LayerSpec]) -> list[LayerSpec]:
    """Insert the implied ReLU after each convolution and each fully connected layer but the last, unless
    an activation follows it (directly or after a BN); after the BN where one follows."""
    kinds = [x.kind for x in layers] + ["", ""]
    after: dict[int, tuple[int, int]] = {}  # index the ReLU goes after -> the span of its conv/kN
    for i in _hosts(layers):
        slot = _relu_slot(kinds, i)
        if slot is not None:
            after[slot] = layers[i].span
    out: list[LayerSpec] = []
    for i, layer in enumerate(layers):
        out.append(layer)
        if i in after:
            out.append(LayerSpec("act", op="ReLU", implicit=True, span=after[i]))
    return out


def parse_layer_string(s: str) -> NetSpec:
    """Read a layer string into a :class:`NetSpec`, checking every layer's shape and the caps.

    >>> spec = parse_layer_string("1x29x29-20C4-MP2-40C5-MP3-150N-10N")
    >>> spec.input, spec.params, spec.output
    ((1, 29, 29), 76040, (10,))
    """
    if not isinstance(s, str):
        raise layer_error("not_text", "", 0, type=type(s).__name__)
    text = s.strip()
    if len(text) > MAX_STRING_LENGTH:
        raise layer_error("too_long", text[:60], 60, max=MAX_STRING_LENGTH, chars=len(text))
    tokens = list(_tokens(text))
    head, _ = tokens[0]
    m = _INPUT.fullmatch(head)
    if m is None:
        raise layer_error("input_first", text, 0, len(head) or 1, token=head)
    size = tuple(int(v) for v in m.groups())
    if min(size) < 1 or max(size[1:]) > MAX_INPUT_SIDE or size[0] > MAX_WIDTH:
        raise layer_error(
            "input_range",
            text,
            0,
            len(head),
            input=list(size),
            max_side=MAX_INPUT_SIDE,
            max_channels=MAX_WIDTH,
        )
    if len(tokens) == 1:
        raise layer_error("no_layers", text, len(text), 1)
    layers: list[LayerSpec] = []
    for token, start in tokens[1:]:
        body, times = token, 1
        if "*" in token:
            body, _, count = token.partition("*")
            star = start + len(body)
            if not count.isdigit() or not 1 <= int(count) <= MAX_REPEAT:
                raise layer_error(
                    "bad_repeat", text, star, len(token) - len(body), max=MAX_REPEAT, count=count
                )
            times = int(count)
        layer = replace(_layer(body, text, start), span=(start, start + len(token)))
        layers += [layer] * times
        if len(layers) > MAX_LAYERS:
            raise layer_error("too_many_layers", text, start, len(token), max=MAX_LAYERS)
    layers = _with_activations(layers)
    if len(layers) > MAX_LAYERS:
        raise layer_error("too_many_layers_with_activations", text, len(text), 1, max=MAX_LAYERS)
    inputs: list = []
    params, macs, output = infer(size, layers, text, inputs)
    for i, (layer, shape) in enumerate(zip(layers, inputs, strict=True)):
        if layer.kind == "res" and layer.stride == 1 and shape[0] == layer.out:
            layers[i] = replace(layer, op=SHORTCUT)  # the identity shortcut: A and B are the same block
    return NetSpec(size, tuple(layers), text, params, macs, output)


def spec_to_string(spec: NetSpec) -> str:
    """The canonical layer string of ``spec``: implied activations left out, runs of equal tokens as ``tok*n``.
    Reading it back gives the same layers."""
    layers = list(spec.layers)
    hosts = _hosts(layers)
    kinds = [x.kind for x in layers] + ["", ""]
    no_act = {_relu_slot(kinds, i) for i in hosts} - {None}  # where the grammar implies one: "Id" says none

    def implied(i: int) -> bool:  # a ReLU that reading the string without it puts back in its place
        rest = kinds[:i] + kinds[i + 1 :]
        return any(h in hosts and _relu_slot(rest, h) == i - 1 for h in (i - 1, i - 2))

    tokens: list[str] = []
    for i, layer in enumerate(layers):
        if not (layer.kind == "act" and layer.op == "ReLU" and implied(i)):
            tokens.append(_token(layer))
        if i in no_act:
            tokens.append("Id")
    c, h, w = spec.input
    runs: list[list] = []
    for t in tokens:
        if runs and runs[-1][0] == t:
            runs[-1][1] += 1
        else:
            runs.append([t, 1])
    return "-".join([f"{c}x{h}x{w}"] + [t if n == 1 else f"{t}*{n}" for t, n in runs])


def _written_options(layer: LayerSpec) -> str:
    """``layer``'s options as the canonical string writes them: those that differ from their default."""
    return "".join(
        f"{c}{getattr(layer, name)}"
        for c, name in OPTIONS[layer.kind].items()
        if getattr(layer, name) != _default(layer.kind, name, layer.kernel)
    )


def _token(layer: LayerSpec) -> str:
    k = layer.kind
    if k == "conv":
        return f"{layer.out}C{layer.kernel}{_written_options(layer)}"
    if k == "pool":
        return f"{POOLS[layer.op].token}{layer.kernel}{_written_options(layer)}"
    if k == "gpool":
        return GLOBAL_POOLS[layer.op].token
    if k == "fc":
        return f"{layer.out}N"
    if k == "bn":
        return "BN"
    if k == "drop":
        return "D" + (f"{layer.p:.6f}".rstrip("0").rstrip(".") or "0")
    if k == "res":
        return f"R{layer.out}{_written_options(layer)}" + ("" if layer.op == SHORTCUT else layer.op)
    return layer.op
