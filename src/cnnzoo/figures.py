"""The figures of the layer table, one row each: what the analyzer's tables, the JSON, ``cnnzoo explain``,
``/api/explain`` and the web pages' columns and totals are all drawn from.

A figure is a value per layer (a row of :class:`cnnzoo.analysis.schema.LayerInfo`, or one computed from
it), written in one of a few ways (``kind``), named in English and Chinese, and explained by the builder
registered for its key (``@explains(KEY)`` in :mod:`cnnzoo.analysis.explain_formulas`). Adding one is a row
here, its builder, and its section in docs/analyzer.md: the CLI's choices, the terminal, Markdown and CSV
tables, the JSON, the API and both pages' columns follow from this table.

This module imports nothing heavy: the CLI reads it to build ``--field``'s choices without loading torch.
Its users read ``FIGURES`` when they run, not when they are imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import CnnzooError

__all__ = ["Figure", "FIGURES", "KINDS", "figure", "figures_json"]

KINDS = {
    "shape": "a shape without the batch: 16×5×5",
    "count": "a count: 1,516",
    "ops": "a count of operations, whose total is also given in K, M, G",
    "rf": "a receptive field: size/jump in input pixels",
    "bytes": "a size in bytes",
}
SUMMED = ("count", "ops", "bytes")  # kinds whose block and total are the sum of the rows


@dataclass(frozen=True)
class Figure:
    key: str  # the row's attribute and the JSON key; `--field` and /api/explain's field= take it
    name: tuple[str, str]  # (English, 中文): what an explanation calls it ("parameters", "参数")
    heading: tuple[str, str]  # (English, 中文): its column; the terminal's table prints the English
    kind: str  # how a value is written and added up: one of KINDS
    total: tuple[str, str] | None = None  # the web page's totals card; None: no card
    terminal: bool = True  # a column of the terminal's table (False: JSON, CSV and the web page only)
    drop: int = 0  # a terminal too narrow leaves out the highest first; 0: never left out
    # how to read it from a row; None: the row's attribute named `key` (a figure the rows imply, such as a
    # size in bytes from the parameters, needs only this function, no change to the analyzer)
    value: Callable[[object], object] | None = None

    @property
    def summed(self) -> bool:
        """Whether a block's figure and the total are the sum of the rows' (not the last row's)."""
        return self.kind in SUMMED

    def read(self, row) -> object:
        """The figure of ``row`` (a layer or a block), as JSON writes it (a receptive field as a dict)."""
        v = self.value(row) if self.value is not None else getattr(row, self.key)
        return v.to_dict() if hasattr(v, "to_dict") else v


FIGURES: tuple[Figure, ...] = (
    Figure("output_shape", ("output shape", "输出形状"), ("output", "输出"), "shape"),
    Figure("params", ("parameters", "参数"), ("params", "参数"), "count", total=("parameters", "参数")),
    Figure(
        "macs",
        ("MACs (multiply-accumulates)", "乘加运算 (MACs)"),
        ("MACs", "乘加运算"),
        "ops",
        total=("MACs (multiply-adds)", "乘加运算（MACs）"),
    ),
    Figure(
        "flops",
        ("FLOPs", "浮点运算 (FLOPs)"),
        ("FLOPs", "浮点运算"),
        "ops",
        total=("FLOPs", "浮点运算（FLOPs）"),
        drop=3,
    ),
    Figure(
        "connections",
        ("connections", "连接数"),
        ("connections", "连接数"),
        "count",
        total=("connections (LeCun)", "连接数（LeCun）"),
        drop=2,
    ),
    Figure(
        "receptive_field",
        ("receptive field", "感受野"),
        ("RF (size/jump)", "感受野（大小/跳距）"),
        "rf",
        drop=1,
    ),
    Figure(
        "activation_bytes",
        ("activation memory (bytes)", "激活内存（字节）"),
        ("activations", "激活内存"),
        "bytes",
        total=("activations, float32", "激活内存（float32）"),
        terminal=False,
    ),
)


def figure(key: str) -> Figure:
    """The figure named ``key``; an unknown key raises :class:`cnnzoo.errors.CnnzooError` naming the others."""
    for f in FIGURES:
        if f.key == key:
            return f
    raise CnnzooError(f"unknown figure {key!r}: choose from {', '.join(f.key for f in FIGURES)}")


def figures_json() -> list[dict]:
    """The table for the web pages (``GET /api/figures``): key, kind, and the words in both languages."""
    both = ("en", "zh")
    return [
        {
            "key": f.key,
            "kind": f.kind,
            "summed": f.summed,
            "name": dict(zip(both, f.name, strict=True)),
            "heading": dict(zip(both, f.heading, strict=True)),
            "total": dict(zip(both, f.total, strict=True)) if f.total else None,
        }
        for f in FIGURES
    ]
