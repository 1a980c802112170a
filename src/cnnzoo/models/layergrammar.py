"""Layer strings: a network written in one line, in the notation of Cireşan, Meier & Schmidhuber (2012).

They wrote their MNIST nets as ``1x29x29-20C4-MP2-40C5-MP3-150N-10N``: the input (channels × height ×
width), then ``kCs`` (k maps, s×s kernel), ``MPs``/``APs`` pooling and ``kN`` fully connected layers. This
module reads that notation, extended to padding, stride, dilation, groups, activations, BN, dropout, global
pooling and residual blocks (docs/layer-strings.md has the grammar), into a :class:`NetSpec`; it checks
every shape and the caps below before anything is built. A layer string is data: it is matched against
the token patterns here, never evaluated. :mod:`cnnzoo.models.layerstring` builds the module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ..errors import LayerStringError
from .layershapes import (
    MAX_FEATURE_ELEMENTS,
    MAX_INPUT_SIDE,
    MAX_LAYERS,
    MAX_MACS,
    MAX_PARAMS,
    MAX_REPEAT,
    MAX_STRING_LENGTH,
    MAX_WIDTH,
    infer,
)

__all__ = [
    "ACTIVATIONS",
    "LayerSpec",
    "NetSpec",
    "MAX_STRING_LENGTH",
    "MAX_LAYERS",
    "MAX_REPEAT",
    "MAX_WIDTH",
    "MAX_INPUT_SIDE",
    "MAX_PARAMS",
    "MAX_MACS",
    "MAX_FEATURE_ELEMENTS",
    "is_layer_string",
    "parse_layer_string",
    "spec_to_string",
]

# activation token (any case) -> its canonical spelling; "Id" means "no activation here"
ACTIVATIONS = {
    a.lower(): a for a in ("ReLU", "Tanh", "Sigmoid", "GELU", "SiLU", "ELU", "LReLU", "ReLU6", "Id")
}
_INT = r"(\d{1,6})"
_OPTS = r"((?:[a-z]\d{1,6})*)"
_TOKENS = [  # (kind, pattern); matched against one token, whole, ignoring case
    ("conv", re.compile(rf"{_INT}c{_INT}{_OPTS}", re.I)),
    ("pool", re.compile(rf"(mp|ap){_INT}{_OPTS}", re.I)),
    ("gpool", re.compile(r"(gap|gmp)", re.I)),
    ("fc", re.compile(rf"{_INT}n", re.I)),
    ("bn", re.compile(r"bn", re.I)),
    ("drop", re.compile(r"d(0|0?\.\d{1,6})?", re.I)),
    ("res", re.compile(rf"r{_INT}((?:s\d{{1,6}})?)(a|b)?", re.I)),
    ("act", re.compile("|".join(ACTIVATIONS), re.I)),
]
_OPT_LETTERS = {"conv": "psdg", "pool": "sp"}
_OPT_NAMES = {"p": "padding", "s": "stride", "d": "dilation", "g": "groups"}
_INPUT = re.compile(r"(\d{1,6})x(\d{1,6})x(\d{1,6})", re.I)
_LOOKS_LIKE = re.compile(r"\s*\d+\s*x\s*\d+\s*x\s*\d+\s*(-|$)", re.I)
EXPECTED = "kCs (conv), MPs/APs (pool), GAP/GMP, kN (fully connected), BN, Dp (dropout), Rk (residual), an activation"


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


def _options(kind: str, opts: str, text: str, start: int) -> dict:
    found: dict = {}
    for m in re.finditer(r"([a-z])(\d+)", opts, re.I):
        letter, pos = m.group(1).lower(), start + m.start()
        if letter not in _OPT_LETTERS[kind]:
            allowed = ", ".join(f"{c} ({_OPT_NAMES[c]})" for c in _OPT_LETTERS[kind])
            raise LayerStringError(
                f"unknown option {letter!r}: a {kind} takes {allowed}", text, pos, len(m[0])
            )
        name = _OPT_NAMES[letter]
        if name in found:
            raise LayerStringError(f"{name} given twice", text, pos, len(m[0]))
        found[name] = int(m.group(2))
    return found


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
            opts = _options("pool", m.group(3), text, start + m.start(3))
            k = int(m[2])
            opts.setdefault("stride", k)
            return LayerSpec("pool", kernel=k, op="max" if m[1].lower() == "mp" else "avg", span=span, **opts)
        if kind == "gpool":
            return LayerSpec("gpool", op="avg" if m[1].lower() == "gap" else "max", span=span)
        if kind == "fc":
            return LayerSpec("fc", out=int(m[1]), span=span)
        if kind == "bn":
            return LayerSpec("bn", span=span)
        if kind == "drop":
            return LayerSpec("drop", p=float(m[1]) if m[1] else 0.5, span=span)
        if kind == "res":
            stride = int(m[2][1:]) if m[2] else 1
            return LayerSpec("res", out=int(m[1]), stride=stride, op=(m[3] or "B").upper(), span=span)
        return LayerSpec("act", op=ACTIVATIONS[token.lower()], span=span)
    what = "an empty layer (two '-' in a row?)" if not token else f"unknown layer {token!r}"
    raise LayerStringError(f"{what}: expected {EXPECTED}", text, start, len(token) or 1)


def _with_activations(layers: list[LayerSpec]) -> list[LayerSpec]:
    """Insert the implied ReLU after each convolution and each fully connected layer but the last, unless
    an activation follows it (directly or after a BN); after the BN where one follows."""
    last_fc = max((i for i, x in enumerate(layers) if x.kind == "fc"), default=-1)
    kinds = [x.kind for x in layers] + ["", ""]
    after: dict[int, tuple[int, int]] = {}  # index the ReLU goes after -> the span of its conv/kN
    for i, layer in enumerate(layers):
        if layer.kind not in ("conv", "fc") or i == last_fc:
            continue
        if kinds[i + 1] == "act" or (kinds[i + 1] == "bn" and kinds[i + 2] == "act"):
            continue
        after[i + 1 if kinds[i + 1] == "bn" else i] = layer.span
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
        raise LayerStringError(f"a layer string must be text, not {type(s).__name__}", "", 0)
    text = s.strip()
    if len(text) > MAX_STRING_LENGTH:
        raise LayerStringError(
            f"longer than {MAX_STRING_LENGTH} characters (MAX_STRING_LENGTH)", text[:60], 60
        )
    tokens = list(_tokens(text))
    head, _ = tokens[0]
    m = _INPUT.fullmatch(head)
    if m is None:
        raise LayerStringError("the input must come first, as CxHxW (e.g. 1x28x28)", text, 0, len(head) or 1)
    size = tuple(int(v) for v in m.groups())
    if min(size) < 1 or max(size[1:]) > MAX_INPUT_SIDE or size[0] > MAX_WIDTH:
        raise LayerStringError(
            f"input sides must be 1..{MAX_INPUT_SIDE} (MAX_INPUT_SIDE), channels 1..{MAX_WIDTH}",
            text,
            0,
            len(head),
        )
    if len(tokens) == 1:
        raise LayerStringError("no layers after the input", text, len(text), 1)
    layers: list[LayerSpec] = []
    for token, start in tokens[1:]:
        body, times = token, 1
        if "*" in token:
            body, _, count = token.partition("*")
            star = start + len(body)
            if not count.isdigit() or not 1 <= int(count) <= MAX_REPEAT:
                raise LayerStringError(
                    f"a repeat is *n with n in 1..{MAX_REPEAT} (MAX_REPEAT)",
                    text,
                    star,
                    len(token) - len(body),
                )
            times = int(count)
        layer = replace(_layer(body, text, start), span=(start, start + len(token)))
        layers += [layer] * times
        if len(layers) > MAX_LAYERS:
            raise LayerStringError(f"more than {MAX_LAYERS} layers (MAX_LAYERS)", text, start, len(token))
    layers = _with_activations(layers)
    if len(layers) > MAX_LAYERS:
        raise LayerStringError(
            f"more than {MAX_LAYERS} layers with the activations (MAX_LAYERS)", text, len(text), 1
        )
    inputs: list = []
    params, macs, output = infer(size, layers, text, inputs)
    for i, (layer, shape) in enumerate(zip(layers, inputs, strict=True)):
        if layer.kind == "res" and layer.stride == 1 and shape[0] == layer.out:
            layers[i] = replace(layer, op="B")  # the identity shortcut: A and B are the same block
    return NetSpec(size, tuple(layers), text, params, macs, output)


def spec_to_string(spec: NetSpec) -> str:
    """The canonical layer string of ``spec``: implied activations left out, runs of equal tokens as ``tok*n``.
    Reading it back gives the same layers."""
    layers = list(spec.layers)
    last_fc = max((i for i, x in enumerate(layers) if x.kind == "fc"), default=-1)
    hosts = {i for i, x in enumerate(layers) if x.kind in ("conv", "fc") and i != last_fc}
    kinds = [x.kind for x in layers] + ["", "", ""]
    no_act = set()  # a conv/kN with no activation where the grammar implies one: "Id" says so
    for i in hosts:
        if kinds[i + 1] != "act" and not (kinds[i + 1] == "bn" and kinds[i + 2] == "act"):
            no_act.add(i + 1 if kinds[i + 1] == "bn" else i)
    tokens: list[str] = []
    for i, layer in enumerate(layers):
        implied = layer.kind == "act" and layer.op == "ReLU" and kinds[i + 1] != "act"
        direct = i - 1 in hosts and kinds[i + 1] != "bn"
        after_bn = i - 2 in hosts and kinds[i - 1] == "bn"
        if not (implied and (direct or after_bn)):
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


def _token(layer: LayerSpec) -> str:
    k = layer.kind
    if k == "conv":
        opts = [
            ("p", layer.padding, 0),
            ("s", layer.stride, 1),
            ("d", layer.dilation, 1),
            ("g", layer.groups, 1),
        ]
        return f"{layer.out}C{layer.kernel}" + "".join(f"{c}{v}" for c, v, default in opts if v != default)
    if k == "pool":
        opts = [("s", layer.stride, layer.kernel), ("p", layer.padding, 0)]
        return f"{'MP' if layer.op == 'max' else 'AP'}{layer.kernel}" + "".join(
            f"{c}{v}" for c, v, default in opts if v != default
        )
    if k == "gpool":
        return "GAP" if layer.op == "avg" else "GMP"
    if k == "fc":
        return f"{layer.out}N"
    if k == "bn":
        return "BN"
    if k == "drop":
        return "D" + (f"{layer.p:.6f}".rstrip("0").rstrip(".") or "0")
    if k == "res":
        return (
            f"R{layer.out}"
            + (f"s{layer.stride}" if layer.stride != 1 else "")
            + ("A" if layer.op == "A" else "")
        )
    return layer.op
