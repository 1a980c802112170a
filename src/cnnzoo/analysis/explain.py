"""Every figure of a :class:`~cnnzoo.analysis.schema.Summary` explained: its formula in symbols, the same
formula with the layer's values filled in, the value, and the rule's source.

``summary.explain("c3", "params")`` → ``6·(3·25+1) + 9·(4·25+1) + 1·(6·25+1) = 1,516`` (LeNet-5's Table I).

Explanations are built on request only: the analyzer's normal path does not change. The first request walks
the model once on the meta device with plain forward hooks (as :mod:`cnnzoo.analysis.reference` does) to
find each row's module and input shape; the formulas then read the hyper-parameters the analyzer's rules
read (:mod:`cnnzoo.analysis.explain_formulas`). The value shown is always the analyzer's own figure, and the
tests evaluate every filled-in formula against it. Receptive fields follow the analyzer's own per-row fields
back through the windows that made them, so the recurrence printed is the one that was computed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from .. import figures
from ..errors import CnnzooError
from ..figures import figure
from .aliases import no_such_layer
from .explain_formulas import BUILDERS, At, Built, Line, explains, kernel_word, line, output_lines
from .explain_text import LANGS, msg, number, one_line, to_text
from .rules import Window, window_of

__all__ = ["Explanation", "Line", "explain", "explain_all"]


@dataclass(frozen=True)
class Explanation:
    layer: str
    field: str
    value: object  # the analyzer's figure: an int, a shape (list) or a receptive field (dict)
    lines: tuple[Line, ...]
    note: str
    source: str
    lang: str = "en"

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "field": self.field,
            "value": self.value,
            "note": self.note,
            "source": self.source,
            "lang": self.lang,
            "lines": [ln.to_dict() for ln in self.lines],
        }

    def one_line(self) -> str:
        return one_line(self)

    def __str__(self) -> str:
        return to_text(self)

    def _repr_html_(self) -> str:  # Jupyter
        from ..notebook import html_pre

        return html_pre(str(self))

    def _repr_markdown_(self) -> str:
        from ..notebook import markdown_pre

        return markdown_pre(str(self))


class _Walk:
    """Each leaf row's module and input shape (without the batch dimension), by row name."""

    def __init__(self, summary) -> None:
        source = summary.source
        if source is None:
            raise CnnzooError(f"the summary of {summary.model} keeps no model to explain")
        model, kwargs = source
        if isinstance(model, str):
            from ..models.source import resolve_model

            with torch.device("meta"):
                work = resolve_model(model, **kwargs)
        else:
            work = copy.deepcopy(model)
        work = work.to("meta").eval()
        self.modules: dict[str, nn.Module] = {}
        self.inputs: dict[str, list[int]] = {}
        self.rf_paths: dict[int, list] = {}  # row index -> its receptive field's path (_rf_path)
        calls: dict[str, int] = {}

        def record(module, args, out, name):
            n = calls[name] = calls.get(name, 0) + 1
            row = name if n == 1 else f"{name}#{n}"
            x = next((a for a in args if isinstance(a, torch.Tensor)), None)
            self.modules[row] = module
            self.inputs[row] = list(x.shape[1:]) if x is not None else list(out.shape[1:])

        leaves = [
            (n or type(m).__name__, m) for n, m in work.named_modules() if next(m.children(), None) is None
        ]
        handles = [m.register_forward_hook(partial(record, name=n)) for n, m in leaves]
        try:
            with torch.no_grad():
                work(torch.empty((1, *summary.input), device="meta"))
        finally:
            for h in handles:
                h.remove()


def _walk(summary) -> _Walk:
    walk = summary.__dict__.get("_explain_walk")
    if walk is None:
        walk = summary.__dict__["_explain_walk"] = _Walk(summary)
    return walk


# -- receptive fields --------------------------------------------------------------------------------------


def _window(walk: _Walk, row) -> Window | None:
    module = walk.modules.get(row.name)
    if module is None:
        return None
    shape = walk.inputs[row.name]
    return window_of(module, tuple(shape[1:]) if len(shape) == 3 else None)


def _predecessor(summary, walk: _Walk, i: int) -> tuple[int | None, Window | None]:
    """The row whose field row ``i``'s input had, and the window between (None: the field passed unchanged):
    the latest earlier row whose field that window turns into row ``i``'s (where paths merged, the larger
    field won, and that is the one found)."""
    rows = summary.layers
    row, rf = rows[i], rows[i].receptive_field
    w = _window(walk, row)
    flat = w is None and len(walk.inputs.get(row.name, ())) == 1  # a full layer over a flattened map
    for j in range(i - 1, -1, -1):
        prev, shape = rows[j].receptive_field, rows[j].output_shape
        if prev is None:
            continue
        if w is not None:
            if prev.through(w) == rf:
                return j, w
        elif prev == rf:
            return j, None
        elif flat and len(shape) == 3:  # a conv whose kernel is the whole H×W map (VGG's FC6 = 7×7)
            wj = Window((shape[1], shape[2]), (1, 1), (0, 0))
            if prev.through(wj) == rf:
                return j, wj
    return None, w


def _rf_path(summary, walk: _Walk, index: int) -> list[tuple]:
    """The windows that made row ``index``'s field, first to last, each with the field before it, following
    the analyzer's own fields back (memoised per row: a whole ResNet-152 stays linear)."""
    rows, cache = summary.layers, walk.rf_paths
    origin = type(rows[index].receptive_field)()  # the input pixel's field: r = 1, j = 1
    chain: list[tuple[int, tuple | None]] = []
    i, base = index, None
    while base is None:
        if i in cache:
            base = cache[i]
            break
        rf = rows[i].receptive_field
        if rf is None or rf == origin:
            chain.append((i, None))
            base = []
            break
        j, w = _predecessor(summary, walk, i)
        if j is None:  # the first window: from the input pixel
            first = (rows[i], w, origin) if w is not None and origin.through(w) == rf else None
            chain.append((i, first))
            base = []
            break
        chain.append((i, (rows[i], w, rows[j].receptive_field) if w is not None else None))
        i = j
    for i, step in reversed(chain):
        base = base + [step] if step is not None else base
        cache[i] = base
    return cache[index]


@explains("receptive_field")
def _rf_explanation(at: At) -> Built:
    summary, walk, index, lang, row = at.summary, at.walk, at.index, at.lang, at.row
    if row.receptive_field is None:
        return Built((), msg("note_no_work", lang), msg("src_rf", lang))
    if row.counted_by == "dispatcher":
        return Built((), msg("note_dispatcher_rf", lang), msg("src_dispatcher", lang))
    path = _rf_path(summary, walk, index)
    dims = (0,) if row.receptive_field.size[0] == row.receptive_field.size[1] else (0, 1)
    lines = []
    for dim in dims:
        terms = ["1"]
        for r, w, before in path:
            k, s, d = w.kernel[dim], w.stride[dim], w.dilation[dim]
            after = before.through(w)
            grow = f"({k} − 1)" if d == 1 else f"{d}·({k} − 1)"
            j = number(before.jump[dim])
            formula = "r = r_prev + (k − 1)·j_prev" if d == 1 else "r = r_prev + d·(k − 1)·j_prev"
            label = msg(
                "rf_step", lang, layer=r.name, k=k, s=s, kernel=kernel_word(walk.modules.get(r.name), lang)
            )
            lines.append(line(label, formula, f"{number(before.size[dim])} + {grow}·{j}", after.size[dim]))
            if s != 1:
                lines.append(
                    line(msg("rf_jump", lang, layer=r.name), "j = j_prev·s", f"{j}·{s}", after.jump[dim])
                )
            terms.append(f"{grow}·{j}")
        lines.append(
            line(
                msg("rf_unrolled", lang),
                "r = 1 + Σ (k − 1)·j",
                " + ".join(terms),
                row.receptive_field.size[dim],
            )
        )
    note = msg("note_rf_input", lang) if not path else ""
    return Built(tuple(lines), note, msg("src_rf", lang))


# -- blocks ------------------------------------------------------------------------------------------------


def _block_explanation(summary, walk: _Walk, block, field: str, lang: str) -> Explanation:
    names = [r.name for r in summary.layers]
    first, last = names.index(block.layers[0]), names.index(block.layers[1])
    members = summary.layers[first : last + 1]
    note = msg(
        "note_block", lang, name=block.name, kind=block.type, first=block.layers[0], last=block.layers[1]
    )
    fig = figure(field)
    if not fig.summed:  # a shape or a field: the block's last row's
        inner = explain(summary, block.layers[1], field, lang)
        return Explanation(
            block.name,
            field,
            inner.value,
            inner.lines,
            f"{note}; {inner.note}".strip("; "),
            inner.source,
            lang,
        )
    per_row = [fig.read(r) for r in members]
    value = fig.read(block) if fig.value is None and hasattr(block, field) else sum(per_row)
    terms = [number(v) for v in per_row if v]
    lines = [line(msg("sum_of_layers", lang), "Σ", " + ".join(terms) or "0", value)]
    if field in ("macs", "params"):
        saving = _without_1x1(walk, members, field, lang)
        if saving is not None:
            lines.append(saving)
            if value:
                note += "; " + msg("note_saving", lang, ratio=saving.value / value)
    return Explanation(block.name, field, value, tuple(lines), note, msg("src_block", lang), lang)


def _without_1x1(walk: _Walk, members, field: str, lang: str) -> Line | None:
    """The seed's 1×1 lesson: a block that reduces channels with a 1×1 conv before a k×k one, against a
    direct k×k conv from the block's input channels to its output channels."""
    convs = [(r, walk.modules.get(r.name)) for r in members]
    convs = [(r, m) for r, m in convs if isinstance(m, nn.Conv2d) and m.groups == 1]
    if len(convs) < 2:
        return None
    m0, (rk, mk) = convs[0][1], next(((r, m) for r, m in convs if m.kernel_size[0] > 1), (None, None))
    if mk is None or m0.kernel_size != (1, 1) or m0.out_channels >= m0.in_channels:
        return None
    c_in, c_out = m0.in_channels, convs[-1][1].out_channels
    k = mk.kernel_size[0]
    h, w = rk.output_shape[1:]
    label = msg("without_1x1", lang, k=k, c_in=c_in, c_out=c_out)
    if field == "macs":
        return line(
            label,
            "k·k·c_in·c_out·H·W",
            "·".join(map(number, (k, k, c_in, c_out, h, w))),
            k * k * c_in * c_out * h * w,
        )
    expr = f"({k}·{k}·{number(c_in)} + 1)·{number(c_out)}"
    return line(label, "(k·k·c_in + 1)·c_out", expr, (k * k * c_in + 1) * c_out)


# -- entry points ------------------------------------------------------------------------------------------


_SHORTCUT_NAMES = (
    "downsample",
    "shortcut",
)  # torchvision's name for a projection shortcut, and the usual other


def _residual_note(summary, index: int, lang: str) -> str:
    """A residual block's addition in seed 000's notation (Ng's course): a[l+2] = g(z[l+2] + a[l]), naming
    the rows whose outputs a[l] (the block's input, through the shortcut's rows if any) and z[l+2] (the main
    path's last output; z[l+3] after a bottleneck's three convolutions) are. "" outside a block."""
    rows = summary.layers
    names = [r.name for r in rows]
    block = next(
        (b for b in summary.blocks if names.index(b.layers[0]) <= index <= names.index(b.layers[1])), None
    )
    if block is None:
        return ""
    first = names.index(block.layers[0])
    inside = rows[first:index]
    shortcut = [r.name for r in inside if any(w in r.name.split(".") for w in _SHORTCUT_NAMES)]
    main = [r for r in inside if r.name not in shortcut]
    if not main:
        return ""
    depth = sum(r.type in ("Conv2d", "Linear") for r in main) or 2
    source = names[first - 1] if first else msg("the_input", lang)
    via = msg("residual_via", lang, rows=", ".join(shortcut)) if shortcut else ""
    return msg(
        "note_residual",
        lang,
        shape="×".join(map(str, rows[index].output_shape)),
        a=source,
        via=via,
        z=main[-1].name,
        k=depth,
    )


@explains("output_shape")
def _output(at: At) -> Built:
    built = output_lines(at.module, at.in_shape, at.row.output_shape, at.lang)
    if (
        at.module is None
        and at.row.type == "add"
        and (residual := _residual_note(at.summary, at.index, at.lang))
    ):
        return Built(built.lines, residual, built.source)
    return built


def explain(summary, layer: str, field: str, lang: str = "en") -> Explanation:
    """The explanation of one figure (``field``, a key of :data:`cnnzoo.figures.FIGURES`) of one layer or
    block."""
    fig = figure(field)
    if lang not in LANGS:
        raise CnnzooError(f"unknown language {lang!r}: choose from {', '.join(LANGS)}")
    walk = _walk(summary)
    names = [r.name for r in summary.layers]
    if layer not in names:
        block = next((b for b in summary.blocks if b.name == layer), None)
        if block is None:
            raise no_such_layer(summary, layer)
        return _block_explanation(summary, walk, block, field, lang)
    index = names.index(layer)
    row = summary.layers[index]
    in_shape = walk.inputs.get(layer, row.output_shape)
    built = BUILDERS[field](At(summary, index, walk.modules.get(layer), in_shape, walk, field, lang))
    return Explanation(layer, field, fig.read(row), built.lines, built.note, built.source, lang)


def explain_all(
    summary, layer: str | None = None, field: str | None = None, lang: str = "en"
) -> list[Explanation]:
    """Every figure of every layer (or of ``layer``; or only ``field``), in table order."""
    layers = [layer] if layer is not None else [r.name for r in summary.layers]
    fields = [field] if field is not None else [f.key for f in figures.FIGURES]
    return [explain(summary, name, f, lang) for name in layers for f in fields]
