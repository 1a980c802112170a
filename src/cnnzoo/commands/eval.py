"""``cnnzoo eval CHECKPOINT``: test accuracy and loss of a trained checkpoint on its (or another) dataset."""

from __future__ import annotations

NAME = "eval"
HELP = "evaluate a checkpoint (run directory or .safetensors) on a dataset's test set"


def add_arguments(p) -> None:
    from ..options import Rule

    p.add_argument("checkpoint", help="run directory or model.safetensors (or a model name, with --weights)")
    p.add_argument(
        "--weights",
        help="with a model name: pretrained weights (imagenet, imagenet:v2 or a .pth/.safetensors file)",
    )
    p.add_argument("--dataset", help="default: the dataset the checkpoint was trained on")
    p.add_argument("--data-dir", help="where the dataset files are")
    p.add_argument("--limit", type=Rule(int, 1).argtype("--limit"), help="evaluate on at most N test images")
    p.add_argument("--batch-size", type=Rule(int, 1, 65_536).argtype("--batch-size"), default=1024)
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")


def run(args) -> int:
    import json

    from ..checkpoint import load_checkpoint
    from ..data import load_dataset
    from ..errors import CnnzooError
    from ..inference import load_model_or_checkpoint
    from ..train import evaluate

    if args.weights:
        model, meta = load_model_or_checkpoint(args.checkpoint, weights=args.weights)
    else:
        model, meta = load_checkpoint(args.checkpoint)
    epoch = getattr(meta, "epoch", 0)  # pretrained weights: no epochs of ours
    name = args.dataset or meta.dataset
    if not name:
        raise CnnzooError(f"{args.checkpoint}: the checkpoint names no dataset; pass --dataset")
    ds = load_dataset(name, data_dir=args.data_dir)
    m = evaluate(
        model,
        ds,
        batch_size=args.batch_size,
        device=args.device,
        mean=meta.mean,
        std=meta.std,
        limit=args.limit,
    )
    out = {
        "model": meta.model,
        "dataset": ds.name,
        "epoch": epoch,
        "test_accuracy": m["accuracy"],
        "test_loss": m["loss"],
        "count": m["count"],
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"{meta.model} (epoch {epoch}) on {ds.name}: test accuracy {m['accuracy']:.4f}, "
            f"test loss {m['loss']:.4f} ({m['count']:,} images)"
        )
    return 0
