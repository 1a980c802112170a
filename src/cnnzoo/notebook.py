"""Tables for Jupyter: the ``_repr_html_`` / ``_repr_markdown_`` of Summary, Explanation, Comparison and History
are built here, from the same cells their text form shows. This module imports nothing from cnnzoo."""

from __future__ import annotations

import html

__all__ = [
    "html_table",
    "markdown_table",
    "html_pre",
    "markdown_pre",
    "history_table",
    "history_html",
    "history_markdown",
]


def html_table(header: list[str], rows: list[list[str]], caption: str = "", note: str = "") -> str:
    """A table whose first column is left-aligned and the others right-aligned (numbers)."""

    def row(cells: list[str], tag: str) -> str:
        return (
            "<tr>"
            + "".join(
                f"<{tag} style='text-align:{'left' if i == 0 else 'right'}'>{html.escape(str(c))}</{tag}>"
                for i, c in enumerate(cells)
            )
            + "</tr>"
        )

    head = f"<caption style='text-align:left'><b>{html.escape(caption)}</b></caption>" if caption else ""
    body = "".join(row(r, "td") for r in rows)
    foot = f"<p><small>{html.escape(note)}</small></p>" if note else ""
    return f"<table>{head}<thead>{row(header, 'th')}</thead><tbody>{body}</tbody></table>{foot}"


def markdown_table(header: list[str], rows: list[list[str]], caption: str = "", note: str = "") -> str:
    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") or " " for c in cells) + " |"

    out = ([f"**{caption}**", ""] if caption else []) + [
        line(header),
        "|---" + "|---:" * (len(header) - 1) + "|",
    ]
    out += [line(r) for r in rows]
    return "\n".join(out + (["", f"_{note}_"] if note else [])) + "\n"


def html_pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def markdown_pre(text: str) -> str:
    return f"```\n{text}\n```\n"


def history_table(history) -> tuple[list[str], list[list[str]], str, str]:
    """(header, rows, caption, note) of a training History: one row per epoch, the test result as the note."""
    keys = list(history.history)
    rows = [
        [str(i + 1)]
        + [f"{v:.4f}" if isinstance(v, float) else str(v) for v in (history.history[k][i] for k in keys)]
        for i in range(len(history.epochs))
    ]
    r = history.result
    done = (
        f"test accuracy {r['test_accuracy']:.4f}, test loss {r['test_loss']:.4f}"
        if "test_accuracy" in r
        else ""
    )
    return ["epoch", *keys], rows, "", done


def history_html(history) -> str:
    """``History._repr_html_``."""
    return html_table(*history_table(history))


def history_markdown(history) -> str:
    """``History._repr_markdown_``."""
    return markdown_table(*history_table(history))
