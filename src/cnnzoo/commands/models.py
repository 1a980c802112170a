"""``cnnzoo models [PATTERN]``: list registered models with their input size, description and the figures
their sources publish (labelled with the source: they are the paper's or torchvision's, not cnnzoo's)."""

NAME = "models"
HELP = "list the registered models"


def add_arguments(p) -> None:
    p.add_argument("pattern", nargs="?", help="shell glob, e.g. 'vgg*'")


def run(args) -> int:
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table

    from ..models import get_model_info, list_models

    # Nothing is ever cut: on a terminal, long cells wrap at word boundaries (a long name folds); a pipe or a
    # file gets every row on one whole line.
    console = Console()
    wrap = console.is_terminal
    table = Table(box=None)
    for col in ("name", "input", "family"):
        table.add_column(col, no_wrap=True, overflow="fold")
    for col in ("description", "published figures (source: figures)"):
        table.add_column(col, ratio=1 if wrap else None, no_wrap=not wrap, overflow="fold")
    widths = [cell_len(c.header) for c in table.columns]
    for name in list_models(args.pattern):
        info = get_model_info(name)
        published = info.published.describe() if info.published else ""
        cells = (name, "x".join(map(str, info.input_size)), info.family, info.description, published)
        table.add_row(*cells)
        widths = [max(w, cell_len(c)) for w, c in zip(widths, cells, strict=True)]
    if not wrap:  # the table's natural width: every column as wide as its widest cell, plus padding
        console = Console(width=sum(w + 2 for w in widths))
    console.print(table)
    return 0
