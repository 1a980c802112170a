"""``cnnzoo train [MODEL]``: train a model on a dataset; prints the layer table, progress and test accuracy.

Settings come, in order of precedence, from the command line, then (with ``--resume``) the run's saved
config.json, then the model's recipe (:mod:`cnnzoo.train.recipes`; ``--recipe paper`` for LeNet-5 as trained in
1998), then TrainConfig's defaults. With
``--nproc N`` the command re-launches itself under ``torchrun`` (N processes, DDP).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

from ..options import Rule

NAME = "train"
HELP = "train a model (default lenet5_modern on Fashion-MNIST)"
DESCRIPTION = (
    "Train a model. Each setting comes from the command line, else (with --resume) the run's config.json, "
    "else the model's recipe (--recipe), else the default shown."
)
DEFAULT_MODEL = "lenet5_modern"


def add_arguments(p) -> None:
    from ..config import TrainConfig  # no torch: `cnnzoo --help` stays fast
    from ..options import add_options
    from ._model import MODEL_HELP, add_model_args

    p.add_argument("model", nargs="?", help=f"{MODEL_HELP} (default {DEFAULT_MODEL})")
    add_model_args(p)
    p.add_argument(
        "--dataset",
        help="a dataset name (`cnnzoo data list` shows them) or imagefolder:PATH (default fashion-mnist)",
    )
    p.add_argument("--data-dir", help="where the dataset files are (or go)")
    p.add_argument(
        "--input", metavar="CxHxW", help="the model's input size, e.g. 3x128x128 (default: its own)"
    )
    p.add_argument(
        "--recipe",
        default="default",
        help="named settings: default (today's, per model), fast (resnet20 in 5 epochs, vgg11 at 32×32 in 3), "
        "paper (lenet5 as LeCun et al. 1998 trained it)",
    )
    p.add_argument(
        "--weights",
        help="start from pretrained weights: imagenet, imagenet:v2 or a .pth/.safetensors file (the classifier "
        "is replaced for the dataset's classes; their mean/std and input size are used)",
    )
    p.add_argument("--quiet", action="store_true", help="no layer table or progress; final lines only")
    p.add_argument(
        "--nproc",
        type=Rule(int, 1, 1024).argtype("--nproc"),
        help="train with N processes (DDP) via torchrun on this machine",
    )
    add_options(p.add_argument_group("training options (TrainConfig)"), TrainConfig)


@contextlib.contextmanager
def _sigterm_as_ctrl_c():
    """SIGTERM ends a run as Ctrl-C does: between two steps, with its last checkpoint kept (the web app's Stop,
    a cluster's notice before it kills). Ctrl-C alone is not enough: a process that a script starts in the
    background inherits SIGINT ignored, and so does every run it launches. The previous handler comes back
    afterwards (``main`` may be called in a longer-lived process)."""
    if threading.current_thread() is not threading.main_thread():  # handlers live in the main thread
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _default_out(model: str) -> str:
    from ..rundir import new_run_name

    name = model.rpartition(":")[2] if ".py:" in model else model  # a file's class name, not its path
    return f"runs/{new_run_name(name)}"


def _launch(args, argv: list[str]) -> int:
    """Re-run this command under torchrun with N processes (``--nproc`` removed, ``--out`` fixed)."""
    import subprocess

    from ..train.distributed import torchrun_command

    rest, it = [], iter(argv)
    for a in it:
        if a == "--nproc":
            next(it, None)  # and its value
        elif not a.startswith("--nproc="):
            rest.append(a)
    if not args.out:
        rest += ["--out", _default_out(args.model or DEFAULT_MODEL)]
    return subprocess.call(torchrun_command(args.nproc, rest))


def run(args) -> int:
    with _sigterm_as_ctrl_c():
        return _train(args)


def _train(args) -> int:
    import os
    import sys
    from dataclasses import fields

    import torch

    from ..config import config_from
    from ..errors import CnnzooError
    from ..train import RunDir, TrainConfig, fit
    from ..train.recipes import recipe_for
    from ..zoo import create_model

    if args.nproc and "WORLD_SIZE" not in os.environ:
        argv = sys.argv[sys.argv.index("train") :] if "train" in sys.argv else ["train"]
        return _launch(args, argv)
    saved: dict = {}
    if args.resume:
        if not args.out:
            raise CnnzooError("--resume needs --out DIR (the run to continue)")
        saved = RunDir(args.out).read_config() or {}
        config_from(saved, source=f"{args.out}/config.json")  # the same ranges as the command line
    model_name = args.model or saved.get("model") or DEFAULT_MODEL
    dataset = args.dataset or saved.get("dataset") or "fashion-mnist"

    # the command line's options carry TrainConfig's field names (--batch-size -> batch_size)
    known = {f.name for f in fields(TrainConfig)}
    options = recipe_for(model_name, args.recipe)
    options |= {k: v for k, v in saved.items() if k in known}
    options |= {k: v for k, v in vars(args).items() if k in known and v is not None}
    options["out"] = args.out or saved.get("out") or _default_out(model_name)
    options["resume"] = bool(args.resume)
    if args.adapt_threads is None:  # fair under contention (cnnzoo.threads) unless a thread count is fixed
        options["adapt_threads"] = not options.get("threads")
    if args.quiet:
        options["progress"] = "quiet"
    elif options.get("progress") == "quiet":
        options["progress"] = None
    options.setdefault("seed", 0)
    # resumed: the weights the run started from
    weights = args.weights or (saved.get("pretrained") or {}).get("spec")
    if weights and args.normalization is None and "normalization" not in saved:
        options["normalization"] = "pretrained"  # the inputs the pretrained features were learnt on

    from ..data.stream import FolderStream, load_for_training

    ds = load_for_training(dataset, args.data_dir, options.get("stream"), bool(options.get("strict")))
    streaming = isinstance(ds, FolderStream)
    if streaming:  # one line per unreadable file goes there, not to the terminal
        ds.skips.log = Path(options["out"]) / "skipped.log"
    size = _input_size(args, model_name)
    torch.manual_seed(options["seed"])  # the initial weights follow --seed too
    model = create_model(
        model_name,
        num_classes=len(ds.classes),
        in_channels=size[0] if size else ds.channels if streaming else ds.image_size[0],
        weights=weights,
        **({"input_size": size[1:]} if size else {}),
        **_model_args(args, saved),
    )
    main = int(os.environ.get("RANK", "0")) == 0
    if main and not args.quiet:
        _print_table(model)
        total = ds.num_train if streaming else len(ds.train_images)
        n = total if options.get("limit") is None else min(options["limit"], total)
        shape = "×".join(map(str, model.card.input_size if streaming else ds.image_size))
        print(
            f"training {model_name} on {ds.name} ({n:,} training images, {shape}"
            f"{', streamed' if streaming else ''}) -> {options['out']}",
            flush=True,
        )

    from ..train.memory import check_train_memory

    batch = options.get("batch_size") or TrainConfig().batch_size
    from ..card import card_of

    card = card_of(model)
    in_size = tuple(card.input_size) if card is not None else size or tuple(ds.image_size)
    check_train_memory(model, in_size, batch, options.get("device"), options.get("optimizer") or "sgd")

    history = fit(model, ds, config=TrainConfig(), **options)  # fit holds the run's lock while it writes
    if main:
        r = history.result
        print(
            f"test accuracy {r['test_accuracy']:.4f}  test loss {r['test_loss']:.4f}  "
            f"({r['epochs']} epochs, {r['train_seconds']:.1f} s training, "
            f"{r['train_images_per_second']:,.0f} img/s, {r['world_size']} process(es))"
        )
        if r.get("test_accuracy_no_flip") is not None:
            print(
                f"with a test-time flip (the mean of each image's and its mirror image's logits); "
                f"without it {r['test_accuracy_no_flip']:.4f}"
            )
        if r.get("skipped_files"):
            listed = Path(history.out) / "skipped.log"
            print(f"skipped {r['skipped_files']} unreadable file(s), listed in {listed}")
        out = history.out
        print(
            f"run directory {out}: curves.png, confusion.png, metrics.jsonl, result.json, model.safetensors"
        )
    return 0


def _input_size(args, model_name: str) -> tuple[int, int, int] | None:
    """``--input CxHxW``; when resuming without it, the size the run's checkpoint was trained at."""
    from ..shapes import parse_input_size

    if args.input:
        return parse_input_size(args.input)
    if args.resume:
        import torch

        from ..card import card_of
        from ..checkpoint import load_meta
        from ..errors import CnnzooError
        from ..models.source import resolve_model

        try:
            size = tuple(load_meta(args.out).input_size)
            with torch.device("meta"):
                own = card_of(
                    resolve_model(model_name, **_model_args(args, {}))
                )  # a file's net may have none
            return size if own is None or size != tuple(own.input_size) else None
        except (CnnzooError, OSError):  # no checkpoint yet (or not a registered model): the model's own size
            return None
    return None


def _model_args(args, saved: dict) -> dict:
    """``--model-args``; when resuming without them, the arguments the run's model was built with."""
    from ._model import model_args

    given = model_args(args)
    if given or not args.resume:
        return {"model_args": given} if given else {}
    from ..checkpoint import load_meta
    from ..errors import CnnzooError

    try:
        recorded = load_meta(args.out).source.get("args", {})
    except (CnnzooError, OSError):
        return {}
    return {"model_args": recorded} if recorded else {}


def _print_table(model) -> None:
    try:
        from ..analysis.render import print_table
        from ..analysis.summary import summary
    except ImportError:
        return
    from ..card import card_of

    print_table(summary(model, input_size=card_of(model).input_size))
