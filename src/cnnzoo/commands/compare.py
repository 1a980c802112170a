"""``cnnzoo compare A B [C ...] [--input CxHxW] [--lang en|zh] [--format table|json|markdown]``."""

NAME = "compare"
HELP = "networks side by side: parameters, MACs, FLOPs, receptive field, memory, ratios to the first"
DESCRIPTION = (
    "Analyse two or more networks (zoo names, layer strings, FILE.py:NAME, torchvision:NAME, timm:NAME) "
    "and show their figures side by side, each with its ratio to the first."
)


def add_arguments(p) -> None:
    from ._model import MODEL_HELP

    p.add_argument("models", nargs="+", metavar="MODEL", help=f"two or more: {MODEL_HELP}")
    p.add_argument("--input", metavar="CxHxW", help="one input size for all (default: each one's own)")
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="labels in English or Chinese")
    p.add_argument("--format", choices=["table", "json", "markdown"], default="table")


def run(args) -> int:
    from ..comparison import compare

    result = compare(*args.models, input_size=args.input, lang=args.lang)
    if args.format == "json":
        print(result.to_json())
    elif args.format == "markdown":
        print(result._repr_markdown_(), end="")
    else:
        print(result)
    return 0
