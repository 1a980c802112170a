"""``cnnzoo predict CHECKPOINT IMAGE... [--top-k K] [--backend torch|onnxruntime]``, or
``cnnzoo predict --model NAME --weights imagenet IMAGE...`` (pretrained weights, their own preprocessing).

Prints each image's most probable classes. ``--dense`` evaluates VGG-style: the classifier turned fully
convolutional, applied at several scales (``--scales``), optionally with the mirrored image (``--flip``),
posteriors averaged; ``--heatmap`` saves the top class's score map over the first image.
"""

import argparse

NAME = "predict"
HELP = "classify image files with a trained checkpoint"


def add_arguments(p) -> None:
    from ..options import Rule

    p.add_argument(
        "checkpoint",
        metavar="CHECKPOINT",
        help="run directory or .safetensors from `cnnzoo train` (or a model name, with --weights)",
    )
    images = p.add_argument("images", metavar="IMAGE", nargs="+", help="PNG/JPEG/BMP/GIF/WebP files")
    p.add_argument(
        "--model",
        metavar="NAME",
        action=_ModelOption,
        images=images,
        help="a registered model instead of a CHECKPOINT (with --weights); every positional is then an image",
    )
    p.add_argument(
        "--weights",
        metavar="WEIGHTS",
        help="pretrained weights for the model: imagenet, imagenet:v2 or a .pth/.safetensors file",
    )
    p.add_argument(
        "--num-classes",
        type=Rule(int, 1, 100_000).argtype("--num-classes"),
        default=None,
        help="with --weights FILE: the classifier size of a fine-tuned state dict",
    )
    p.add_argument(
        "--top-k",
        type=Rule(int, 1, 100_000).argtype("--top-k"),
        default=3,
        metavar="K",
        help="classes shown per image (default 3)",
    )
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch")
    p.add_argument(
        "--invert",
        choices=("auto", "yes", "no"),
        default="auto",
        help="grayscale models: invert dark-on-light drawings (auto: when the image border is light)",
    )
    p.add_argument(
        "--dense", action="store_true", help="VGG dense evaluation (fully convolutional, multi-scale)"
    )
    p.add_argument("--scales", type=_scales, default=None, help="dense: smaller-side sizes, e.g. 256,384,512")
    p.add_argument("--flip", action="store_true", help="dense: also average the mirrored image")
    p.add_argument("--heatmap", metavar="OUT.png", help="dense: save the top class's score map (first image)")


class _ModelOption(argparse.Action):
    """``--model NAME``: there is no CHECKPOINT, so a single positional (the image) is all there may be.
    argparse cannot make IMAGE optional only then, nor let CHECKPOINT be optional without breaking
    ``predict CKPT --top-k 3 a.png b.png``; this action lifts IMAGE's requirement once the option is seen,
    and :func:`run` takes CHECKPOINT as the first image. The parser is built anew for every command line."""

    def __init__(self, option_strings, dest, images, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.images = images

    def __call__(self, parser, namespace, values, option_string=None):
        self.images.required = False
        setattr(namespace, self.dest, values)


def _scales(text: str) -> tuple[int, ...]:
    try:
        scales = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"scales must be integers separated by commas, not {text!r}"
        ) from None
    if not scales or min(scales) < 1:
        raise argparse.ArgumentTypeError(f"scales must be positive integers, not {text!r}")
    return scales


def run(args) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from ..errors import CnnzooError
    from ..inference import Predictor, load_model_or_checkpoint

    if args.top_k < 1:
        raise CnnzooError(f"--top-k must be at least 1, not {args.top_k}")
    if not args.dense and (args.scales or args.flip or args.heatmap):
        raise CnnzooError("--scales, --flip and --heatmap need --dense")
    if args.model:  # argparse put the first image where CHECKPOINT would be
        args.images = [args.checkpoint, *(args.images or ())]
    err = Console(stderr=True)
    model, card = load_model_or_checkpoint(
        args.model or args.checkpoint,
        warn=lambda m: err.print(f"[yellow]warning:[/] {m}"),
        weights=args.weights,
        num_classes=args.num_classes,
    )
    if args.num_classes and args.weights:
        err.print(
            f"{args.model or args.checkpoint}: a {args.num_classes}-class classifier, from {args.weights}"
        )
    invert = {"auto": "auto", "yes": True, "no": False}[args.invert]
    if args.dense:
        results = _dense(model, card, args, invert)
    else:
        predictor = Predictor(model, card, backend=args.backend)
        results = predictor.topk(predictor.load_images(args.images, invert=invert), k=args.top_k)

    # File names when they are unique (long temporary paths would squeeze the table), else the paths.
    names = [Path(p).name for p in args.images]
    shown = names if len(set(names)) == len(names) else args.images
    table = Table("image", "rank", "class", "probability", box=None)
    for label, best in zip(shown, results, strict=True):
        for rank, (name, prob) in enumerate(best, 1):
            table.add_row(label if rank == 1 else "", str(rank), name, f"{prob:.4f}")
    Console().print(table)
    return 0


def _dense(model, card, args, invert) -> list[list[tuple[str, float]]]:
    """VGG's test-time evaluation through ``cnnzoo.convert`` (images loaded square at the largest scale)."""
    import torch
    from rich.console import Console

    from ..dense import dense_predict
    from ..errors import CnnzooError
    from ..inference import load_image
    from ..plots import save_heatmap
    from ..preprocess import normalize, to_float

    if args.backend != "torch":
        raise CnnzooError("--dense runs on the torch backend only")
    c, h, w = card.input_size
    side = max(args.scales or (card.resize or min(h, w),))  # pretrained: the publisher's resize (VGG's Q)
    images = torch.stack([load_image(p, c, (side, side), invert=invert) for p in args.images])
    # the one preprocessing's scaling and normalisation; dense_predict resizes to each scale itself
    x = normalize(to_float(images), card.mean, card.std)  # (N, C, side, side)
    result = dense_predict(model, x, scales=args.scales, flip=args.flip)
    values, indices = result.scores.topk(min(args.top_k, result.scores.shape[1]), dim=1)
    classes = list(card.classes) or [str(i) for i in range(result.scores.shape[1])]
    if args.heatmap and result.maps:
        top = int(indices[0, 0])
        path = save_heatmap(
            x[0], result.maps[-1][0], top, args.heatmap, title=f"{classes[top]} ({args.images[0]})"
        )
        Console(stderr=True).print(f"wrote {path}", highlight=False)
    return [
        [(classes[i], float(v)) for v, i in zip(vs, ix, strict=True)]
        for vs, ix in zip(values.tolist(), indices.tolist(), strict=True)
    ]
