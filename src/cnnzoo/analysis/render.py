"""Renderings of a :class:`~cnnzoo.analysis.summary.Summary`: rich table, plain text, Markdown, CSV.

A table never cuts a number or a name. Given a width (a terminal's), the rich table leaves out its
least informative columns until it fits, and says so in one line; should it still not fit, cells wrap
(``overflow="fold"``), never end in "…". Without a width (a pipe, a file, ``str()``) it is printed in full.
"""

from __future__ import annotations

import csv
import io

from rich.cells import cell_len
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .. import figures

# The columns come from cnnzoo.figures.FIGURES (read at each call): the figures with terminal=True, in order.
LEADING, BLOCK_LEADING = ("layer", "type", "kernel"), ("block", "type", "layers")


def _shown() -> list:
    return [f for f in figures.FIGURES if f.terminal]


def _columns(leading: tuple[str, ...] = LEADING) -> tuple[str, ...]:
    return (*leading, *(f.heading[0] for f in _shown()))


def _numeric() -> tuple[str, ...]:
    return tuple(f.heading[0] for f in _shown() if f.summed)


def _drop_order() -> tuple[str, ...]:
    """Left out first when a terminal is too narrow: what the other columns imply or the other formats give."""
    dropped = sorted((f for f in _shown() if f.drop), key=lambda f: -f.drop)
    return (*(f.heading[0] for f in dropped), "kernel", "type", "layers")


def si_count(n: int) -> str:
    """A MAC or FLOP total in the unit its size calls for, three significant digits: 416,520 -> "417 K",
    3,097,344 -> "3.10 M", 714,188,480 -> "714 M", 30,972,282,344 -> "31.0 G" (under 1,000: the count)."""
    units = [(u, 1000 ** (i + 1)) for i, u in enumerate("KMGT")]
    fits = [(u, scale) for u, scale in units if n >= scale]
    if not fits:
        return f"{n:,}"
    i = len(fits) - 1
    if float(f"{n / units[i][1]:.3g}") >= 1000 and i + 1 < len(units):  # 999,500 is "1 M", not "1e+03 K"
        i += 1
    v = n / units[i][1]
    return f"{v:#.3g}".rstrip(".") + f" {units[i][0]}" if v < 1000 else f"{v:,.0f} {units[i][0]}"


def print_table(s) -> None:
    """The summary's rich table on stdout: fitted to a terminal's width; to a pipe or a file, whole
    (its width ignored), so that a log never cuts a name or a number."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=natural_width(s))
    console.print(s)


def _num(n: int) -> str:
    return f"{n:,}" if n else "–"


def _shape(shape) -> str:
    return "×".join(str(s) for s in shape)


def _cell(f, row) -> str:
    """One figure of a layer or block, as the tables write its kind."""
    v = f.read(row)
    if f.kind == "shape":
        return _shape(v)
    if f.kind == "rf":
        return f"{v['size']}/{v['jump']}" if v else ""
    text = _num(v)
    if f.key == "params" and v and getattr(row, "trainable_params", v) != v:
        text += f" ({v - row.trainable_params:,} fixed)"
    return text


def _cells(row) -> list[str]:
    return [row.name + (" *" if row.note else ""), row.type, row.kernel, *(_cell(f, row) for f in _shown())]


def _totals(s) -> str:
    t = s.total
    fixed = t["params"] - t["trainable_params"]
    return (
        f"total: {t['params']:,} params ({t['trainable_params']:,} trainable"
        + (f", {fixed:,} fixed" if fixed else "")
        + f"), {t['macs']:,} MACs ({si_count(t['macs'])}), {t['flops']:,} FLOPs ({si_count(t['flops'])}), "
        f"{t['connections']:,} connections, {t['activation_bytes'] / 2**20:.2f} MiB of activations per image"
        + _convention(s)
    )


def _convention(s) -> str:
    c = s.convention
    if not c:
        return ""
    return f"\nas {c['name']} counts: {c['macs']:,} MACs ({si_count(c['macs'])}), {c['params']:,} params"


def _fitting(
    columns: tuple[str, ...], rows: list[list[str]], width: int | None
) -> tuple[list[str], list[str]]:
    """The columns to show within ``width`` (None: all of them) and those left out, in DROP_ORDER."""
    keep = list(columns)
    widths = {c: max([cell_len(c)] + [cell_len(r[i]) for r in rows]) for i, c in enumerate(columns)}

    def total() -> int:  # rich's default box: a border before each column and at the end, padding 1 a side
        return sum(widths[c] + 3 for c in keep) + 1

    dropped = []
    for col in _drop_order():
        if width is None or total() <= width:
            break
        if col in keep:
            keep.remove(col)
            dropped.append(col)
    return keep, dropped


def _table(title: str | None, columns: tuple[str, ...], rows: list[list[str]], width: int | None):
    keep, dropped = _fitting(columns, rows, width)
    table = Table(title=title, title_justify="left", header_style="bold")
    numeric = _numeric()
    for col in keep:
        table.add_column(col, justify="right" if col in numeric else "left", overflow="fold")
    index = [columns.index(c) for c in keep]
    for r in rows:
        table.add_row(*(r[i] for i in index))
    return table, dropped


def rich_table(s, width: int | None = None) -> Group:
    """The summary as rich renderables; ``width``: the columns available (None: everything, in full)."""
    rows = [_cells(row) for row in s.layers]
    table, dropped = _table(f"{s.model} — input {_shape(s.input)}", _columns(), rows, width)
    parts = [table, Text(_totals(s), style="bold"), *(Text(n, style="dim") for n in footnotes(s))]
    if s.blocks:
        block_rows = [
            [b.name, b.type, f"{b.layers[0]} … {b.layers[1]}", *(_cell(f, b) for f in _shown())]
            for b in s.blocks
        ]
        blocks, dropped_b = _table("blocks", _columns(BLOCK_LEADING), block_rows, width)
        dropped += [c for c in dropped_b if c not in dropped]
        parts.append(blocks)
    if dropped:
        parts.append(
            Text(
                f"({', '.join(dropped)} left out to fit {width} columns: a wider terminal, or "
                "--format markdown/csv/json, shows every column)",
                style="dim",
            )
        )
    parts.append(Text(s.conventions, style="dim"))
    return Group(*parts)


def footnotes(s) -> list[str]:
    """One line per row marked * (an uncounted operation: its MACs and FLOPs leave it out; parameters not
    used by this forward)."""
    return [f"* {row.name}: {row.note}" for row in s.layers if row.note] + list(s.notes)


def natural_width(s) -> int:
    """Columns the full table needs (its widest line), so that a non-terminal gets it uncut."""
    rows = [_cells(row) for row in s.layers]
    widths = [max([cell_len(c)] + [cell_len(r[i]) for r in rows]) + 3 for i, c in enumerate(_columns())]
    return max(sum(widths) + 1, cell_len(_totals(s)), cell_len(f"{s.model} — input {_shape(s.input)}"))


def to_text(s, width: int | None = None) -> str:
    """Plain text; ``width`` None: the whole table, uncut (``str(summary)``)."""
    console = (
        Console(  # force_jupyter=False: in a notebook rich would also display it, so print() showed it twice
            file=io.StringIO(),
            width=width or natural_width(s),
            record=True,
            color_system=None,
            force_jupyter=False,
        )
    )
    console.print(rich_table(s, width))
    return console.export_text()


def to_html(s) -> str:
    """The table for Jupyter (``Summary._repr_html_``): every column, the totals and the conventions."""
    from ..notebook import html_table

    rows = [_cells(row) for row in s.layers]
    return html_table(
        list(_columns()), rows, f"{s.model} — input {_shape(s.input)}", f"{_totals(s)}. {s.conventions}"
    )


def to_markdown(s) -> str:
    lines = [
        f"**{s.model}**, input {_shape(s.input)}",
        "",
        "| " + " | ".join(_columns()) + " |",
        "|" + "---|" * len(_columns()),
    ]
    lines += ["| " + " | ".join(c or " " for c in _cells(row)) + " |" for row in s.layers]
    lines += ["", _totals(s), *footnotes(s), "", f"_{s.conventions}_"]
    return "\n".join(lines) + "\n"


def to_csv(s) -> str:
    """Every figure of every layer (the trainable parameters after the parameters); a receptive field in
    three columns (rf_size, rf_jump, rf_start)."""
    buf = io.StringIO()
    head = ["name", "type", "kernel"]
    for f in figures.FIGURES:
        head += [f"rf_{k}" for k in ("size", "jump", "start")] if f.kind == "rf" else [f.key]
        head += ["trainable_params"] if f.key == "params" else []
    w = csv.writer(buf)
    w.writerow(head)
    for r in s.layers:
        cells = [r.name, r.type, r.kernel]
        for f in figures.FIGURES:
            v = f.read(r)
            if f.kind == "rf":
                cells += [v[k] for k in ("size", "jump", "start")] if v else ["", "", ""]
            else:
                cells.append("x".join(map(str, v)) if f.kind == "shape" else v)
            cells += [r.trainable_params] if f.key == "params" else []
        w.writerow(cells)
    return buf.getvalue()
