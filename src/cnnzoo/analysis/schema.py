"""What the analyzer returns: one :class:`LayerInfo` per leaf call, :class:`BlockInfo` per block, and the
:class:`Summary` that holds them (``.to_dict()`` is the JSON schema of ``cnnzoo summary --format json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import NamedTuple

from .. import figures
from .rules import CONVENTIONS, Window

__all__ = ["ReceptiveField", "LayerInfo", "BlockInfo", "Summary"]


class ReceptiveField(NamedTuple):
    """Receptive field of one unit of a feature map, per spatial dimension (H, W), in input pixels.
    (A named tuple: the analyzer makes one per windowed layer, and a tuple is built ~5× faster than a
    frozen dataclass.)"""

    size: tuple[float, float] = (1, 1)
    jump: tuple[float, float] = (1, 1)
    start: tuple[float, float] = (0.5, 0.5)  # centre of the first unit's field; pixel centres are at i + 0.5

    def through(self, w: Window) -> ReceptiveField:
        """The field after a sliding window: grows by (effective kernel − 1)·jump, strides multiply the jump,
        padding moves the first centre back."""
        (s0, s1), (j0, j1), (c0, c1) = self.size, self.jump, self.start
        e0 = w.dilation[0] * (w.kernel[0] - 1)  # effective kernel − 1
        e1 = w.dilation[1] * (w.kernel[1] - 1)
        return ReceptiveField(
            (s0 + e0 * j0, s1 + e1 * j1),
            (j0 * w.stride[0], j1 * w.stride[1]),
            (c0 + (e0 / 2 - w.padding[0]) * j0, c1 + (e1 / 2 - w.padding[1]) * j1),
        )

    def merge(self, other: ReceptiveField | None) -> ReceptiveField:
        return self if other is None or self.size >= other.size else other

    def to_dict(self) -> dict:
        def one(v):
            v = tuple(int(x) if float(x).is_integer() else x for x in v)
            return v[0] if v[0] == v[1] else list(v)

        return {"size": one(self.size), "jump": one(self.jump), "start": one(self.start)}


def _row_dict(row: LayerInfo | BlockInfo) -> dict:
    """A layer's or block's fields, the receptive field as its own dict (the JSON schema)."""
    # fields() rather than asdict(): asdict deep-copies every value, ~10x slower for the same plain dict
    d = {f.name: getattr(row, f.name) for f in fields(row)}
    for k, v in d.items():
        if isinstance(v, list):
            d[k] = list(v)
    d["receptive_field"] = row.receptive_field.to_dict() if row.receptive_field else None
    if isinstance(row, LayerInfo):  # figures computed from a row's own (cnnzoo.figures: Figure.value)
        d |= {f.key: f.read(row) for f in figures.FIGURES if f.value is not None}
    return d


@dataclass(slots=True)  # one per row, hundreds per analysis: slots make them cheaper to build and keep
class LayerInfo:
    name: str
    type: str
    kernel: str  # e.g. "3×3 s2 p1"; "" for layers without a window
    output_shape: list[int]  # without the batch dimension
    params: int  # all parameters, fixed ones included (counted on the module's first call only)
    trainable_params: int
    macs: int
    flops: int
    connections: int
    receptive_field: ReceptiveField | None
    activation_bytes: int
    note: str = ""  # e.g. "uncounted: fft_r2c" (an operation without a cost rule), "not called"
    counted_by: str = (
        "rule"  # "rule" (cnnzoo.analysis.rules) or "dispatcher" (what the call ran, dispatch.py)
    )

    def to_dict(self) -> dict:
        return _row_dict(self)


@dataclass
class BlockInfo:
    name: str
    type: str
    layers: list[str]  # first and last row of the block
    output_shape: list[int]
    params: int
    trainable_params: int
    macs: int
    flops: int
    connections: int
    receptive_field: ReceptiveField | None
    shortcut: list[str] = field(default_factory=list)  # rows on the shortcut path (a projection's conv, BN)

    def to_dict(self) -> dict:
        return _row_dict(self)


@dataclass
class Summary:
    model: str
    input: tuple[int, int, int]
    layers: list[LayerInfo]
    blocks: list[BlockInfo] = field(default_factory=list)
    total: dict = field(default_factory=dict)
    conventions: str = CONVENTIONS
    # (model or registered name, model kwargs): what explain() walks, on request only; not in to_dict()
    source: tuple | None = field(default=None, repr=False, compare=False)
    notes: list[str] = field(default_factory=list)  # how the figures were obtained, when not as usual
    # another tool's totals (cnnzoo.analysis.conventions): {"name", "macs", "params", "by_kind"}; None: cnnzoo's
    convention: dict | None = None
    inputs: list | None = None  # every input's dims, where several or not float32 (input: the first's)
    dtypes: list | None = None  # their dtypes ("int64"), in the same order
    convention_count: object = field(default=None, repr=False, compare=False)  # its ConventionCount

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "input": list(self.input),
            "conventions": self.conventions,
            "layers": [row.to_dict() for row in self.layers],
            "blocks": [b.to_dict() for b in self.blocks],
            "total": dict(self.total),
            "notes": list(self.notes),
            "convention": self.convention,
            "inputs": self.inputs,
            "dtypes": self.dtypes,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def layer(self, name: str) -> LayerInfo:
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(f"no layer {name!r} in the summary of {self.model}")

    def explain(self, layer: str | None = None, field: str | None = None, lang: str = "en"):
        """How a figure was computed: ``explain("c3", "params")`` is an :class:`~cnnzoo.analysis.explain.
        Explanation` (formula, the formula with the values filled in, the value, the rule's source);
        without a layer or a field, the list of every one (``lang``: "en" or "zh")."""
        from .aliases import resolve_layer
        from .explain import explain, explain_all

        names = resolve_layer(self, layer) if layer is not None else [None]  # the papers' names too
        if len(names) == 1 and layer is not None and field is not None:
            return explain(self, names[0], field, lang)
        return [e for name in names for e in explain_all(self, name, field, lang)]

    def __rich_console__(self, console, options):
        from .render import rich_table

        # a terminal: fit its width (leaving columns out, never cutting a number); otherwise the whole table
        yield rich_table(self, options.max_width if console.is_terminal else None)

    def __str__(self) -> str:
        from .render import to_text

        return to_text(self)

    def _repr_html_(self) -> str:  # Jupyter
        from .render import to_html

        return to_html(self)

    def _repr_markdown_(self) -> str:
        from .render import to_markdown

        return to_markdown(self)
