"""``cnnzoo summary MODEL [--input CxHxW] [--format table|json|markdown|csv] [--trace]``: MODEL is any model argument
(a zoo name, a layer string, FILE.py:NAME, torchvision:NAME, timm:NAME)."""

NAME = "summary"
HELP = "layer table: shapes, parameters, MACs/FLOPs, connections, receptive fields"
DESCRIPTION = (
    "Analyse a model without running it on data (PyTorch's meta device): one row per layer "
    "with output shape, parameters, MACs, FLOPs, LeCun's connections and the receptive field."
)


def add_arguments(p) -> None:
    from ..options import Rule
    from ._model import MODEL_HELP, add_model_args

    p.add_argument("model", help=MODEL_HELP)
    p.add_argument(
        "--input",
        metavar="CxHxW",
        action="append",
        help="input size, e.g. 1x32x32 (default: the paper's); again for a model with several inputs "
        "(--input 3x224x224 --input 10)",
    )
    p.add_argument(
        "--dtype",
        action="append",
        choices=[
            "float32",
            "float64",
            "float16",
            "bfloat16",
            "int64",
            "int32",
            "int16",
            "int8",
            "uint8",
            "bool",
        ],
        help="the input's dtype (default float32; int64 for token indices); once per --input, in order",
    )
    add_model_args(p)
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
        "--convention",
        choices=["cnnzoo", "paper", "torchinfo", "fvcore", "ptflops", "thop"],
        default="cnnzoo",
        help="also give the MACs and parameters another tool reports (its rules, reproduced)",
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
    from ..models.source import check_model_arg, resolve_model
    from ._model import model_args

    model = args.model
    inputs = args.input or []
    args.input = inputs[0] if len(inputs) == 1 else inputs or None  # several: a list, passed on whole
    source = check_model_arg(args.model)
    if source.kind in ("file", "torchvision", "timm"):  # the user's code: built once, for its input size too
        from ..errors import ShapeError
        from ..shapes import parse_input_size

        try:  # C×H×W builds the model for it; any other input (C×L, a sequence, several) is summary's to read
            size = parse_input_size(args.input) if isinstance(args.input, str) else None
        except ShapeError:
            size = None
        kw = {"input_size": size} if size else {}
        model = resolve_model(args.model, args.num_classes, model_args=model_args(args), **kw)
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

        with torch.device("meta"):
            model = to_fully_convolutional(resolve_model(model, num_classes=args.num_classes))
    kwargs = {"num_classes": args.num_classes} if args.num_classes and isinstance(model, str) else {}
    s = summary(
        model,
        args.input,
        allow_uncounted=args.allow_uncounted,
        convention=args.convention,
        dtype=args.dtype,
        **kwargs,
    )
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
        render.print_table(s)
    if memory is not None and args.format != "json":
        from ..analysis.train_memory import to_text

        print(to_text(memory))
    if args.trace:
        print(f"\ntrace: a real 1×{'×'.join(map(str, s.input))} tensor through {s.model}")
        traced = model if args.weights or not isinstance(model, str) else args.model  # already built
        if args.fully_convolutional and not args.weights:  # a real copy (the analysed one is on meta)
            traced = to_fully_convolutional(resolve_model(args.model, num_classes=args.num_classes))
        for name, kind, shape in trace(traced, s.input, **kwargs):
            print(f"{name:<24} {kind:<18} output shape: {tuple(shape)}")
    return 0
