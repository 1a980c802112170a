"""``cnnzoo explain MODEL [LAYER] [--field F] [--input CxHxW] [--lang en|zh] [--format text|json|markdown]``."""

NAME = "explain"
HELP = "how each figure of the layer table is computed: the formula with the values filled in"
DESCRIPTION = (
    "Explain the analyzer's figures (output size, parameters, MACs, FLOPs, connections, receptive field, "
    "activation memory): each one's formula, the same formula with the layer's values, and its source. "
    "Without LAYER, the whole network, one line per figure."
)


def add_arguments(p) -> None:
    from .. import figures
    from ._model import MODEL_HELP

    p.add_argument("model", help=MODEL_HELP)
    p.add_argument(
        "layer",
        nargs="?",
        help="a layer or block name as in `cnnzoo summary`, or the paper's: C3, conv1_1, fc6, conv2_x (default: all)",
    )
    p.add_argument("--field", choices=[f.key for f in figures.FIGURES], help="one figure only (default: all)")
    p.add_argument("--input", metavar="CxHxW", help="input size, e.g. 1x32x32 (default: the paper's)")
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="English or 中文")
    p.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    p.add_argument(
        "--convention",
        choices=["all", "paper", "torchinfo", "fvcore", "ptflops", "thop"],
        help="what that tool counts, by operation, and how far its MACs are from cnnzoo's (whole net or "
        "LAYER); all: every convention's totals side by side",
    )


def run(args) -> int:
    import json

    from ..analysis.explain_text import to_markdown
    from ..analysis.summary import summary

    if args.convention == "all":
        from ..analysis.conventions_text import side_by_side

        print(side_by_side(summary(args.model, args.input), args.lang))
        return 0
    if args.convention:
        from ..analysis.conventions_text import describe

        s = summary(args.model, args.input, convention=args.convention)
        if args.format == "json":
            print(json.dumps(s.convention, indent=2, ensure_ascii=False))
        else:
            print(describe(s, args.layer, args.lang))
        return 0
    s = summary(args.model, args.input)
    explanations = s.explain(args.layer, args.field, lang=args.lang)
    if not isinstance(explanations, list):
        explanations = [explanations]
    if args.format == "json":
        print(json.dumps([e.to_dict() for e in explanations], indent=2, ensure_ascii=False))
    elif args.format == "markdown":
        print(to_markdown(explanations), end="")
    elif args.layer is None or args.field is None and len({e.layer for e in explanations}) > 1:
        for e in explanations:
            print(e.one_line())
    else:
        print("\n\n".join(str(e) for e in explanations))
    return 0
