"""``cnnzoo summary NAME [--input CxHxW] [--format table|json|markdown|csv] [--trace]``."""

NAME = "summary"
HELP = "layer table: shapes, parameters, MACs/FLOPs, connections, receptive fields"
DESCRIPTION = (
    "Analyse a registered model without running it on data (PyTorch's meta device): one row per layer "
    "with output shape, parameters, MACs, FLOPs, LeCun's connections and the receptive field."
)


def add_arguments(p) -> None:
    from ..options import Rule

    p.add_argument("model", help="registered model name (see `cnnzoo models`)")
    p.add_argument("--input", metavar="CxHxW", help="input size, e.g. 1x32x32 (default: the paper's)")
    p.add_argument("--format", choices=["table", "json", "markdown", "csv"], default="table")
    p.add_argument("--num-classes", type=Rule(int, 1, 100_000).argtype("--num-classes"), default=None)
    p.add_argument(
        "--weights",
        help="analyse the model built with these pretrained weights (imagenet, imagenet:v2 or a file): "
        "their input size and classes",
    )
    p.add_argument(
        "--trace", action="store_true", help="also walk a real tensor through and print each shape"
    )
    p.add_argument(
        "--train-memory",
        action="store_true",
        help="also predict one training step's memory: activations kept for backward per layer, gradients, "
        "optimizer state, peak",
    )
    p.add_argument("--batch-size", type=Rule(int, 1, 1_000_000).argtype("--batch-size"), default=1)
    p.add_argument("--optimizer", choices=["sgd", "adam", "muon"], default="sgd")
    p.add_argument(
        "--allow-uncounted",
        action="store_true",
        help="an operation without a cost rule marks its row uncounted (a footnote says which) instead of "
        "stopping the analysis",
    )
    p.add_argument(
        "--fully-convolutional",
        action="store_true",
        help="analyse the fully convolutional form (FC layers as convs): any input size gives a score map",
    )


def run(args) -> int:
    import dataclasses

    from ..analysis import render
    from ..analysis.summary import summary, trace

    model = args.model
    if args.weights:  # loaded and checked like everywhere else; the input size is the weights' crop
        from ..zoo import create_model as create_pretrained

        model = create_pretrained(args.model, num_classes=args.num_classes, weights=args.weights)
        args.input = args.input or "x".join(map(str, model.card.input_size))
        if args.fully_convolutional:
            from ..convert import to_fully_convolutional

            model = to_fully_convolutional(model)
    elif args.fully_convolutional:
        import torch

        from ..convert import to_fully_convolutional
        from ..models import create_model, get_model_info

        get_model_info(model)
        with torch.device("meta"):
            model = to_fully_convolutional(create_model(args.model, num_classes=args.num_classes))
    kwargs = {"num_classes": args.num_classes} if args.num_classes and isinstance(model, str) else {}
    s = summary(model, args.input, allow_uncounted=args.allow_uncounted, **kwargs)
    if args.fully_convolutional:  # the title says which form; the model (and its card) keeps its name
        s = dataclasses.replace(s, model=f"{args.model} (fully convolutional)")
    memory = None
    if args.train_memory:
        from ..analysis.train_memory import train_memory

        memory = train_memory(model, s.input, args.batch_size, args.optimizer)
    if args.format == "json":
        if memory is not None:
            import json

            print(json.dumps({**s.to_dict(), "train_memory": memory.to_dict()}, indent=2, ensure_ascii=False))
        else:
            print(s.to_json())
    elif args.format == "markdown":
        print(render.to_markdown(s), end="")
    elif args.format == "csv":
        print(render.to_csv(s), end="")
    else:
        from rich.console import Console

        from ..analysis.render import natural_width

        console = Console()
        if not console.is_terminal:  # a pipe or a file: the whole table, however wide (COLUMNS is ignored)
            console = Console(width=natural_width(s))
        console.print(s)
    if memory is not None and args.format != "json":
        from ..analysis.train_memory import to_text

        print(to_text(memory))
    if args.trace:
        print(f"\ntrace: a real 1×{'×'.join(map(str, s.input))} tensor through {s.model}")
        traced = model if args.weights else args.model  # the loaded model is a real one already
        if args.fully_convolutional and not args.weights:  # a real copy (the analysed one is on meta)
            traced = to_fully_convolutional(create_model(args.model, num_classes=args.num_classes))
        for name, kind, shape in trace(traced, s.input, **kwargs):
            print(f"{name:<24} {kind:<18} output shape: {tuple(shape)}")
    return 0
