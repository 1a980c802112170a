"""``cnnzoo export CKPT_OR_MODEL --format onnx|safetensors|torchscript --out PATH``.

CKPT is a run directory or ``.safetensors`` file from ``cnnzoo train``; MODEL is a registered name (random
weights, with a warning). ONNX exports are checked on the spot with onnxruntime against PyTorch.
"""

NAME = "export"
HELP = "export a checkpoint or model to ONNX, safetensors or TorchScript (ONNX checked with onnxruntime)"


def add_arguments(p) -> None:
    from ..options import Rule

    p.add_argument("source", metavar="CKPT_OR_MODEL", help="run directory, .safetensors file or model name")
    p.add_argument(
        "--weights",
        help="with a model name: pretrained weights (imagenet, imagenet:v2 or a .pth/.safetensors file)",
    )
    p.add_argument("--format", choices=("onnx", "safetensors", "torchscript"), default="onnx")
    p.add_argument("--out", required=True, metavar="PATH", help="output file")
    p.add_argument(
        "--opset", type=Rule(int, 9, 25).argtype("--opset"), default=18, help="ONNX opset (default 18)"
    )
    p.add_argument("--static-batch", action="store_true", help="ONNX: fix the batch size to 1")
    p.add_argument(
        "--atol",
        type=Rule(float, 0, 1).argtype("--atol"),
        default=1e-4,
        help="ONNX/TorchScript check tolerance (default 1e-4)",
    )


def run(args) -> int:
    from rich.console import Console

    from ..atomic import shown_path
    from ..export import check_output, export_onnx, export_safetensors, export_torchscript
    from ..inference import load_model_or_checkpoint

    args.out = check_output(args.out, args.source, args.weights)  # before a byte is read or written
    err = Console(stderr=True)
    model, card = load_model_or_checkpoint(
        args.source, warn=lambda m: err.print(f"[yellow]warning:[/] {m}"), weights=args.weights
    )
    size = card.input_size
    if args.format == "onnx":
        result = export_onnx(
            model, args.out, size, dynamic_batch=not args.static_batch, opset=args.opset, atol=args.atol
        )
    elif args.format == "torchscript":
        result = export_torchscript(model, args.out, size, atol=args.atol)
    else:  # the card (a checkpoint's whole metadata) travels along: the file stays a loadable checkpoint
        result = export_safetensors(model, args.out, metadata=card.to_dict())
    shape = "x".join(map(str, size))
    flip = ", with its test-time flip" if card.test_flip and args.format != "safetensors" else ""
    line = f"wrote {shown_path(result.path)} ({args.format}, {result.bytes / 1e6:.1f} MB, {card.model} {shape}{flip})"
    if result.max_abs_diff is not None:
        checked = "onnxruntime" if args.format == "onnx" else "reloaded TorchScript"
        line += f"; {checked} vs PyTorch max abs diff {result.max_abs_diff:.2e} (tolerance {args.atol:g})"
    Console(soft_wrap=True).print(line, highlight=False)
    return 0
