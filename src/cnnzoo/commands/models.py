"""``cnnzoo models [PATTERN]``: list registered models with their input size and paper."""

NAME = "models"
HELP = "list the registered models"


def add_arguments(p) -> None:
    p.add_argument("pattern", nargs="?", help="shell glob, e.g. 'vgg*'")


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..registry import get_model_info, list_models

    table = Table("name", "input", "family", "description", box=None)
    for name in list_models(args.pattern):
        info = get_model_info(name)
        table.add_row(name, "x".join(map(str, info.input_size)), info.family, info.description)
    Console().print(table)
    return 0
