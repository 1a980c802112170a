"""One layer's figures written out: the formula in symbols and the same formula with the layer's values.

Each figure of :data:`cnnzoo.figures.FIGURES` has a builder, registered with ``@explains(KEY)``: it gets
the row (:class:`At`) and returns the lines, a note and the source (:class:`Built`).

Each builder reads what the analyzer's rules read — the window (:func:`cnnzoo.analysis.rules.window_of`),
the channels, groups, bias, LeNet-5's connection table, the input and output shapes — and writes the rule of
:mod:`cnnzoo.analysis.rules` (costs) or :mod:`cnnzoo.shapes` (sizes) out with them. The figure itself is the
analyzer's: ``tests/test_explain.py`` evaluates every filled-in formula of every zoo model and holds it to
that figure.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..layers import RBFOutput, ScaledTanh, SparseConv2d, Subsampling
from ..shapes import pair
from .explain_text import msg, number
from .rules import ACTIVATIONS, POOLS, cost_rule, window_of

__all__ = ["At", "BUILDERS", "Built", "Line", "explains", "kernel_word", "kind_of", "line", "output_lines"]


@dataclass(frozen=True)
class Line:
    """One step: what it is (``label``), the rule in symbols (``formula``) and with the values filled in,
    ending in ``= value`` (``filled``; it evaluates to ``value``)."""

    label: str
    formula: str
    filled: str
    value: int | float

    def to_dict(self) -> dict:
        return {"label": self.label, "formula": self.formula, "filled": self.filled, "value": self.value}


def line(label: str, formula: str, expr: str, value) -> Line:
    shown = number(value)
    return Line(label, formula, expr if expr == shown else f"{expr} = {shown}", value)


@dataclass(frozen=True)
class Built:
    lines: tuple[Line, ...]
    note: str
    source: str


@dataclass(frozen=True)
class At:
    """What a builder reads: one row of a summary, its module and its input, and the language."""

    summary: object  # the Summary
    index: int  # the row's place in summary.layers
    module: nn.Module | None  # None: an operation outside modules (a residual addition)
    in_shape: list[int]  # the row's input, without the batch
    walk: object  # the explanation walk (cnnzoo.analysis.explain): modules and inputs by row name
    field: str
    lang: str

    @property
    def row(self):
        return self.summary.layers[self.index]


BUILDERS: dict[str, Callable[[At], Built]] = {}  # figure key -> its builder


def explains(*keys: str):
    """Register the decorated function as the builder of the figures ``keys``."""

    def register(build: Callable[[At], Built]) -> Callable[[At], Built]:
        for key in keys:
            BUILDERS[key] = build
        return build

    return register


def _dot(*factors) -> str:
    return "·".join(number(f) if isinstance(f, int) else str(f) for f in factors)


def kind_of(module: nn.Module | None) -> str:
    if module is None:
        return "kind_add"
    if isinstance(module, (nn.Conv2d, SparseConv2d)):
        return "kind_conv"
    if isinstance(module, Subsampling):
        return "kind_subsampling"
    if isinstance(module, (*POOLS, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return "kind_pool"
    if isinstance(module, nn.Linear):
        return "kind_full"
    if isinstance(module, RBFOutput):
        return "kind_rbf"
    if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.LocalResponseNorm, nn.GroupNorm, nn.LayerNorm)):
        return "kind_norm"
    return "kind_act"


# -- output shape ------------------------------------------------------------------------------------------


def kernel_word(module, lang: str) -> str:
    """卷积核 for a convolution's kernel, 池化核 for a pooling window (seed 003); "kernel" for both in English."""
    pooling = kind_of(module) in ("kind_pool", "kind_subsampling")
    return msg("pool_kernel" if pooling else "conv_kernel", lang)


def _window_line(
    label: str, n: int, k: int, s: int, p, d: int, ceil: bool, out: int, lang: str, kernel_word: str
) -> Line:
    """One dimension through a window, in PyTorch's rule: ⌊(n − k' + 2p)/s⌋ + 1, k' = d·(k − 1) + 1."""
    total = p if isinstance(p, str) else 2 * p  # 'same' padding arrives as its total (a str)
    pad_sym, pad_val = ("p_total", str(total)) if isinstance(p, str) else ("2p", f"2·{p}")
    k_sym, k_val = ("k", str(k)) if d == 1 else ("(d·(k − 1) + 1)", f"({d}·({k} − 1) + 1)")
    lo, hi = ("⌈", "⌉") if ceil else ("⌊", "⌋")
    formula = f"{lo}(n − {k_sym} + {pad_sym})/s{hi} + 1"
    expr = f"{lo}({number(n)} − {k_val} + {pad_val})/{s}{hi} + 1"
    span = n - (d * (k - 1) + 1) + int(total)
    tail = " + 1"
    if (
        ceil and (-(-span // s)) * s >= n + int(total) // 2
    ):  # the last window would start in the right padding
        formula, expr, tail = formula + " − 1", expr + " − 1", " + 1 − 1"
    elif not ceil and total in (0, "0") and d == 1 and span % s == 0:
        expr += f" = ({number(n)} − {k})/{s} + 1"  # exact: the floor changes nothing
    if span % s:  # the floor (ceiling) step: ⌊22/3⌋ + 1 = ⌊7.33⌋ + 1
        expr += f" = {lo}{number(span)}/{s}{hi}{tail} = {lo}{_two_decimals(span, s, ceil)}{hi}{tail}"
    values = msg(
        "window_values",
        lang,
        dim=label,
        n=n,
        k=k,
        s=s,
        p=p if not isinstance(p, str) else f"{p}/2",
        kernel=kernel_word,
    )
    if d != 1:
        values += msg("dilation_values", lang, d=d)
    return line(values, formula, expr, out)


def _two_decimals(num: int, den: int, up: bool) -> str:
    """num/den cut (``up``: raised) to two decimals, so that its floor (ceiling) stays num/den's: 22/3 -> 7.33."""
    cents = -(-num * 100 // den) if up else num * 100 // den
    return f"{cents // 100}.{cents % 100:02d}".rstrip("0").rstrip(".")


def output_lines(module, in_shape, out_shape, lang: str) -> Built:
    src = msg("src_shape", lang)
    if module is None:
        return Built((), msg("note_same_shape", lang), src)
    w = window_of(module)
    if w is not None and len(in_shape) == 3 and len(out_shape) == 3:
        pad = getattr(module, "padding", 0)
        pads = [str(d * (k - 1)) if pad == "same" else "0" for k, d in zip(w.kernel, w.dilation, strict=True)]
        paddings = pads if isinstance(pad, str) else list(w.padding)
        dims = []
        for i in (0, 1):
            dims.append((in_shape[1 + i], w.kernel[i], w.stride[i], paddings[i], w.dilation[i]))
        labels = [msg("dim_hw", lang)] if dims[0] == dims[1] else [msg("dim_h", lang), msg("dim_w", lang)]
        lines = tuple(
            _window_line(labels[i], *dims[i], w.ceil_mode, out_shape[1 + i], lang, kernel_word(module, lang))
            for i in range(len(labels))
        )
        notes = [msg("note_channels", lang, c=out_shape[0])]
        if w.ceil_mode:
            notes.append(msg("note_ceil", lang))
        if isinstance(pad, str) and pad == "same":
            notes.append(msg("note_same_pad", lang))
        return Built(lines, "; ".join(notes), msg("src_window", lang))
    if isinstance(module, nn.Flatten) and len(in_shape) > 1:
        return Built((line(msg("flatten", lang), "C·H·W", _dot(*in_shape), math.prod(in_shape)),), "", src)
    if isinstance(module, (nn.Linear, RBFOutput)):
        return Built((), msg("note_linear", lang, n=out_shape[-1]), src)
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return Built((), msg("note_adaptive", lang, hw="×".join(map(str, out_shape[1:]))), src)
    return Built((), msg("note_same_shape", lang), src)


# -- parameters --------------------------------------------------------------------------------------------


def table1_terms(module: SparseConv2d) -> str:
    """LeNet-5's C3 by groups of maps that read equally many input maps: 6·(3·25+1) + 9·(4·25+1) + …"""
    k2 = module.kernel_size**2
    counts = Counter(module.connections_per_output)
    return " + ".join(f"{n}·({m}·{k2}+1)" for m, n in sorted(counts.items()))


@explains("params")
def params_lines(at: At) -> Built:
    module, row_params, lang = at.module, at.row.params, at.lang
    src = msg("src_params", lang)
    if not row_params and "#" in at.row.name:  # a layer called again: its parameters are its first call's
        return Built((), msg("note_repeat", lang, first=at.row.name.split("#")[0]), src)
    if module is None or row_params == 0:
        return Built((), msg("note_no_params", lang), src)
    bias = getattr(module, "bias", None) is not None
    b = " + 1" if bias else ""
    if isinstance(module, nn.Conv2d):
        kh, kw = pair(module.kernel_size)
        g = module.groups
        c_in = f"({number(module.in_channels)}/{g})" if g > 1 else number(module.in_channels)
        sym_in = "c_in/g" if g > 1 else "c_in"
        formula = f"(k·k·{sym_in}{b})·c_out" if bias else f"k·k·{sym_in}·c_out"
        expr = (
            f"({kh}·{kw}·{c_in}{b})·{number(module.out_channels)}"
            if bias
            else _dot(kh, kw, c_in, module.out_channels)
        )
        return Built((line(msg("bias_terms", lang), formula, expr, row_params),), "", src)
    if isinstance(module, SparseConv2d):
        formula = "Σ_m n_m·(m·k·k+1)"
        return Built(
            (line(msg("table1", lang), formula, table1_terms(module), row_params),),
            "",
            msg("src_table1", lang),
        )
    if isinstance(module, nn.Linear):
        formula = f"(in{b})·out" if bias else "in·out"
        expr = (
            f"({number(module.in_features)}{b})·{number(module.out_features)}"
            if bias
            else _dot(module.in_features, module.out_features)
        )
        return Built((line(msg("bias_terms", lang), formula, expr, row_params),), "", src)
    if isinstance(module, (Subsampling, nn.BatchNorm2d, nn.BatchNorm1d)):
        c = module.channels if isinstance(module, Subsampling) else module.num_features
        return Built((line(msg("bias_terms", lang), "2·C", f"2·{number(c)}", row_params),), "", src)
    if isinstance(module, RBFOutput):
        label = msg("rbf_centres", lang)
        lines = (line(label, "in·out", _dot(module.in_features, module.out_features), row_params),)
        fixed = not module.centers.requires_grad
        note = msg(
            "note_rbf_fixed", lang, out=module.out_features, n=module.in_features, total=number(row_params)
        )
        return Built(lines, note if fixed else "", msg("src_rbf", lang))
    terms = [_dot(*p.shape) if p.dim() else "1" for p in module.parameters(recurse=False)]
    return Built((line("", "Σ numel", " + ".join(terms), row_params),), "", src)


# -- MACs, FLOPs, connections ------------------------------------------------------------------------------


def _elements(shape) -> tuple[str, str]:
    """(symbols, values) of an output's element count: C·H·W and 16·10·10 (a vector: n and 120)."""
    if len(shape) == 3:
        return "C·H·W", _dot(*shape)
    return ("n" if len(shape) == 1 else "·".join(f"n{i}" for i in range(len(shape)))), _dot(*shape)


@explains("macs", "flops", "connections")
def cost_lines(at: At) -> Built:
    """MACs, FLOPs or connections of one call (``field``), as :func:`cnnzoo.analysis.rules.cost_rule` counts
    them, written out; what the dispatcher counted is said to be so."""
    module, field, in_shape, lang = at.module, at.field, at.in_shape, at.lang
    out_shape, value = at.row.output_shape, getattr(at.row, at.field)
    if at.row.counted_by == "dispatcher":
        return Built((), msg("note_dispatcher", lang), msg("src_dispatcher", lang))
    src = msg({"macs": "src_macs", "flops": "src_flops", "connections": "src_connections"}[field], lang)
    kind = msg(kind_of(module), lang)
    out_sym, out_val = _elements(out_shape)
    in_sym, in_val = _elements(in_shape)
    if module is None:  # an elementwise operation outside modules (a residual addition)
        if field == "flops" and value:
            return Built((line(kind, out_sym, out_val, value),), "", src)
        return Built((), msg("note_no_work", lang), src)
    bias = int(getattr(module, "bias", None) is not None)
    f = None  # (formula, expr)
    if isinstance(module, nn.Conv2d):
        kh, kw = pair(module.kernel_size)
        g = module.groups
        c_in = f"({number(module.in_channels)}/{g})" if g > 1 else number(module.in_channels)
        sym_in = "c_in/g" if g > 1 else "c_in"
        macs = f"{kh}·{kw}·{c_in}·{out_val}"
        f = {
            "macs": (f"k·k·{sym_in}·{out_sym}", macs),
            "flops": (
                f"2·k·k·{sym_in}·{out_sym}" + (f" + {out_sym}" if bias else ""),
                f"2·{macs}" + (f" + {out_val}" if bias else ""),
            ),
            "connections": (f"(k·k·{sym_in} + {bias})·{out_sym}", f"({kh}·{kw}·{c_in} + {bias})·{out_val}"),
        }[field]
    elif isinstance(module, SparseConv2d):
        k2 = module.kernel_size**2
        hw = _dot(*out_shape[1:])
        counts = sorted(Counter(module.connections_per_output).items())
        links = " + ".join(f"{n}·{m}" for m, n in counts)
        f = {
            "macs": ("Σ_o m_o·k·k·H·W", f"({links})·{k2}·{hw}"),
            "flops": ("2·Σ_o m_o·k·k·H·W + C·H·W", f"2·({links})·{k2}·{hw} + {out_val}"),
            "connections": ("Σ_o (m_o·k·k+1)·H·W", f"({table1_terms(module)})·{hw}"),
        }[field]
    elif isinstance(module, nn.Linear):
        rows = math.prod(out_shape) // module.out_features
        r_sym, r_val = ("", "") if rows == 1 else ("·rows", f"·{number(rows)}")
        i, o = number(module.in_features), number(module.out_features)
        f = {
            "macs": (f"in·out{r_sym}", f"{i}·{o}{r_val}"),
            "flops": (
                f"2·in·out{r_sym}" + (f" + out{r_sym}" if bias else ""),
                f"2·{i}·{o}{r_val}" + (f" + {o}{r_val}" if bias else ""),
            ),
            "connections": (f"(in + {bias})·out{r_sym}", f"({i} + {bias})·{o}{r_val}"),
        }[field]
    elif isinstance(module, Subsampling):
        f = {
            "macs": (out_sym, out_val),
            "flops": (f"(k·k + 1)·{out_sym}", f"({module.window} + 1)·{out_val}"),
            "connections": (f"(k·k + 1)·{out_sym}", f"({module.window} + 1)·{out_val}"),
        }[field]
    elif isinstance(module, RBFOutput):
        i, o = number(module.in_features), number(module.out_features)
        f = {
            "macs": ("in·out", f"{i}·{o}"),
            "flops": ("3·in·out", f"3·{i}·{o}"),
            "connections": ("in·out", f"{i}·{o}"),
        }[field]
    elif isinstance(module, POOLS):
        kh, kw = pair(module.kernel_size)
        cmp = isinstance(module, nn.MaxPool2d)
        f = {
            "flops": (
                f"(k·k − 1)·{out_sym}" if cmp else f"k·k·{out_sym}",
                f"({kh}·{kw} − 1)·{out_val}" if cmp else f"{kh}·{kw}·{out_val}",
            ),
            "connections": (f"k·k·{out_sym}", f"{kh}·{kw}·{out_val}"),
        }.get(field)
    elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        avg = isinstance(module, nn.AdaptiveAvgPool2d)
        f = {
            "flops": (
                f"C·H_in·W_in + {out_sym}" if avg else "C·H_in·W_in",
                f"{in_val} + {out_val}" if avg else in_val,
            ),
            "connections": ("C·H_in·W_in", in_val),
        }.get(field)
    elif field == "flops":
        per = cost_rule(module).flops
        if isinstance(module, nn.LocalResponseNorm):
            f = (f"(2·size + 2)·{out_sym}", f"(2·{module.size} + 2)·{out_val}")
        elif per and isinstance(
            module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm, ScaledTanh)
        ):
            f = (f"{per}·{out_sym}", f"{per}·{out_val}")
        elif per and isinstance(module, ACTIVATIONS):
            f = (out_sym, out_val)
    if f is None or (not value and f[1] in ("", "0")):
        return Built((), msg("note_no_work", lang), src)
    return Built((line(msg("per_element", lang, kind=kind), f[0], f[1], value),), "", src)


@explains("activation_bytes")
def memory_lines(at: At) -> Built:
    out_shape, value, lang = at.row.output_shape, at.row.activation_bytes, at.lang
    numel = math.prod(out_shape)
    size = value // numel if numel else 0
    sym, val = _elements(out_shape)
    return Built(
        (line(msg("elements", lang), f"{sym}·bytes", f"{val}·{size}", value),), "", msg("src_memory", lang)
    )
