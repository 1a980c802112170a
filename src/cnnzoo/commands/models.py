"""``cnnzoo models [PATTERN]``: list registered models with their input size and paper."""

NAME = "models"
HELP = "list the registered models"


def add_arguments(p) -> None:
    p.add_argument("pattern", nargs="?", help="shell glob, e.g. 'vgg*'")


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..registry import get_model_info, list_models

    table = Table(box=None)
    for col in ("name", "input", "family"):
        table.add_column(col, no_wrap=True)
    table.add_column("description", ratio=1)
    for name in list_models(args.pattern):
        info = get_model_info(name)
        table.add_row(name, "x".join(map(str, info.input_size)), info.family, info.description)
    Console().print(table)
    return 0
