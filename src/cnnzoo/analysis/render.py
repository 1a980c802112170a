"""Renderings of a :class:`~cnnzoo.analysis.summary.Summary`: rich table, plain text, Markdown, CSV."""

from __future__ import annotations

import csv
import io

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

COLUMNS = ("layer", "type", "kernel", "output", "params", "MACs", "FLOPs", "connections", "RF (size/jump)")


def _num(n: int) -> str:
    return f"{n:,}" if n else "–"


def _shape(shape) -> str:
    return "×".join(str(s) for s in shape)


def _rf(rf) -> str:
    if rf is None:
        return ""
    d = rf.to_dict()
    return f"{d['size']}/{d['jump']}"


def _cells(row) -> list[str]:
    params = _num(row.params)
    if row.params and row.trainable_params != row.params:
        params += f" ({row.params - row.trainable_params:,} fixed)"
    return [row.name, row.type, row.kernel, _shape(row.output_shape), params, _num(row.macs), _num(row.flops),
            _num(row.connections), _rf(row.receptive_field)]  # fmt: skip


def _totals(s) -> str:
    t = s.total
    fixed = t["params"] - t["trainable_params"]
    return (
        f"total: {t['params']:,} params ({t['trainable_params']:,} trainable"
        + (f", {fixed:,} fixed" if fixed else "")
        + f"), {t['macs']:,} MACs ({t['macs'] / 1e9:.3f} G), {t['flops']:,} FLOPs, "
        f"{t['connections']:,} connections, {t['activation_bytes'] / 2**20:.2f} MiB of activations per image"
    )


def rich_table(s) -> Group:
    table = Table(title=f"{s.model} — input {_shape(s.input)}", title_justify="left", header_style="bold")
    for col in COLUMNS:
        table.add_column(
            col, justify="right" if col in ("params", "MACs", "FLOPs", "connections") else "left"
        )
    for row in s.layers:
        table.add_row(*_cells(row))
    parts = [table, Text(_totals(s), style="bold")]
    if s.blocks:
        blocks = Table(title="blocks", title_justify="left", header_style="bold")
        for col in ("block", "type", "layers", "output", "params", "MACs", "RF (size/jump)"):
            blocks.add_column(col, justify="right" if col in ("params", "MACs") else "left")
        for b in s.blocks:
            blocks.add_row(b.name, b.type, f"{b.layers[0]} … {b.layers[1]}", _shape(b.output_shape), _num(b.params),
                           _num(b.macs), _rf(b.receptive_field))  # fmt: skip
        parts.append(blocks)
    parts.append(Text(s.conventions, style="dim"))
    return Group(*parts)


def to_text(s, width: int = 160) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(rich_table(s))
    return console.export_text()


def to_markdown(s) -> str:
    lines = [f"**{s.model}**, input {_shape(s.input)}", "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]  # fmt: skip
    lines += ["| " + " | ".join(c or " " for c in _cells(row)) + " |" for row in s.layers]
    lines += ["", _totals(s), "", f"_{s.conventions}_"]
    return "\n".join(lines) + "\n"


def to_csv(s) -> str:
    buf = io.StringIO()
    fields = ["name", "type", "kernel", "output_shape", "params", "trainable_params", "macs", "flops", "connections",
              "rf_size", "rf_jump", "rf_start", "activation_bytes"]  # fmt: skip
    w = csv.writer(buf)
    w.writerow(fields)
    for r in s.layers:
        rf = r.receptive_field.to_dict() if r.receptive_field else {"size": "", "jump": "", "start": ""}
        w.writerow([r.name, r.type, r.kernel, "x".join(map(str, r.output_shape)), r.params, r.trainable_params,
                    r.macs, r.flops, r.connections, rf["size"], rf["jump"], rf["start"], r.activation_bytes])  # fmt: skip
    return buf.getvalue()
