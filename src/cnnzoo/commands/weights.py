"""``cnnzoo weights list | fetch | import | path | remove``: the publisher's pretrained weights, kept locally."""

from __future__ import annotations

NAME = "weights"
HELP = "pretrained ImageNet weights (torchvision's): list, fetch, import a downloaded file, path, remove"
DESCRIPTION = (
    "Pretrained weights for the zoo models torchvision publishes them for, stored as safetensors in "
    "$CNNZOO_WEIGHTS (default ~/.cache/cnnzoo/weights). VERSION is imagenet (the default), imagenet:v1, "
    "imagenet:v2...; NAME:VERSION may shorten it to resnet50:v2. Accuracies shown are the publisher's."
)


def add_arguments(p) -> None:
    import argparse

    from ..options import Rule

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--offline", action="store_true", help="never use the network (also: CNNZOO_OFFLINE=1)"
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", parents=[common], help="every published version, and whether it is stored")
    ls.add_argument("--format", choices=("text", "json"), default="text")
    f = sub.add_parser("fetch", parents=[common], help="download, check and store NAME[:VERSION]")
    f.add_argument("spec", metavar="NAME[:VERSION]")
    f.add_argument("--force", action="store_true", help="fetch again even if stored")
    f.add_argument(
        "--timeout",
        type=Rule(float, 0, 3600, lo_open=True).argtype("--timeout"),
        default=30.0,
        help="seconds without data before giving up",
    )
    i = sub.add_parser(
        "import", parents=[common], help="store a .pth or .safetensors file (the offline path)"
    )
    i.add_argument("spec", metavar="NAME[:VERSION]")
    i.add_argument("file", metavar="FILE")
    pa = sub.add_parser("path", parents=[common], help="print the stored safetensors file of NAME[:VERSION]")
    pa.add_argument("spec", metavar="NAME[:VERSION]")
    rm = sub.add_parser("remove", parents=[common], help="delete NAME[:VERSION] from the store")
    rm.add_argument("spec", metavar="NAME[:VERSION]")
    rm.add_argument("--all", action="store_true", help="every stored version of NAME")


def _list(args) -> int:
    import json

    from .. import weights

    stored = {(c.model, c.version): c for c in weights.list_stored()}
    rows = [e for versions in weights.catalogue().values() for e in versions]
    if args.format == "json":
        out = []
        for e in rows:
            card = stored.get((e.model, e.spec))
            row = e.to_dict() | {"stored": card is not None, "verified": card.verified if card else None}
            if card is not None and not card.verified:
                row["published_metrics"] = {}  # the publisher's figures are of the publisher's file
            out.append(row)
        out += [c.to_dict() | {"stored": True} for c in stored.values() if c.publisher == weights.USER]
        print(
            json.dumps(
                {"publisher": weights.PUBLISHER, "store": str(weights.store_root()), "weights": out}, indent=2
            )
        )
        return 0
    print(f"{'model':<10} {'version':<22} {'size':>9}  {'stored':<10} published accuracy")
    for e in rows:
        card = stored.get((e.model, e.spec))
        state = "-" if card is None else ("yes" if card.verified else "unverified")
        version = e.spec + (" (default)" if e.default else "")
        figures = e.published() if card is None or card.verified else "not the publisher's file: none apply"
        print(f"{e.model:<10} {version:<22} {e.file_size_mb:>6.1f} MB  {state:<10} {figures}")
    for card in (c for c in stored.values() if c.publisher == weights.USER):
        print(f"{card.model:<10} {card.version:<22} {'':>9}  {'yours':<10} yours: no published accuracy")
    print(
        f"\nStore: {weights.store_root()}. The weights and figures are {weights.PUBLISHER}'s, under their "
        "publisher's terms (docs/weights.md)."
    )
    return 0


def run(args) -> int:
    from .. import weights
    from ..weights.files import stderr_progress

    if args.action == "list":
        return _list(args)
    if args.action == "fetch":
        where, card = weights.fetch(
            args.spec,
            offline=args.offline or None,
            force=args.force,
            progress=stderr_progress(f"downloading {args.spec}"),
            timeout=args.timeout,
        )
        published = (
            "yours"
            if card.publisher == weights.USER
            else weights.lookup(card.model, card.version).published()
        )
        print(f"{card.model} {card.version}: {where} ({published})")
    elif args.action == "import":
        where, card = weights.import_file(args.spec, args.file)
        note = (
            "the publisher's file (hash checked)"
            if card.verified
            else "your own version"
            if card.publisher == weights.USER
            else "not the publisher's file: unverified, none of its figures apply"
        )
        print(f"{card.model} {card.version}: {where} ({note})")
    elif args.action == "path":
        print(weights.path(args.spec))
    elif args.action == "remove":
        name = weights.split_spec(args.spec)[0]
        specs = [f"{name}:{e.version}" for e in weights.entries(name)] if args.all else [args.spec]
        removed = [p for spec in specs for p in weights.remove(spec)]
        print(f"removed {len(removed)} file(s)" + "".join(f"\n  {p}" for p in removed))
    return 0
