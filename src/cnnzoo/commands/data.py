"""``cnnzoo data list|fetch|info``: see which datasets are present, download them, inspect one."""

NAME = "data"
HELP = "list, fetch and inspect datasets (the known ones and image folders)"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="datasets and where each would load from")
    ls.add_argument("--data-dir", help="also look in this folder")
    for action, help_ in (
        ("fetch", "find or download a dataset, check it and cache its tensors"),
        ("info", "counts, shapes, classes, mean/std, source and checksum status"),
    ):
        q = sub.add_parser(action, help=help_)
        q.add_argument("name", help="a dataset name (`cnnzoo data list` shows them) or imagefolder:PATH")
        q.add_argument("--data-dir", help="folder holding the files you brought (searched first)")
        if action == "info":
            q.add_argument("--no-download", action="store_true", help="fail instead of downloading")


def _list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..data.datasets import locate
    from ..data.sources import SPECS, download_dir, get_spec, mirror_urls

    table = Table("name", "present", "source", box=None)
    for name in SPECS:
        spec = get_spec(name)
        found = locate(spec, args.data_dir)
        if found:
            table.add_row(name, "yes", found[0])
        else:
            url = mirror_urls(spec, spec.files[0].filename)[0].rsplit("/", 1)[0] + "/"
            table.add_row(name, "no", f"would download from {url} into {download_dir(spec, args.data_dir)}")
    table.add_row("imagefolder:PATH", "-", "PATH/<class>/*.png or PATH/{train,test}/<class>/*.png")
    Console().print(table)
    return 0


def _show(ds, console) -> None:
    from rich.table import Table

    t = Table(box=None, show_header=False)
    for split in ("train", "test"):
        images, labels = getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels")
        counts = labels.bincount(minlength=ds.num_classes).tolist() if labels.numel() else []
        t.add_row(
            split,
            f"{images.shape[0]:,} images",
            "x".join(map(str, images.shape[1:])),
            f"per class min {min(counts, default=0):,} max {max(counts, default=0):,}",
        )
    console.print(f"[bold]{ds.name}[/]  source: {ds.source}")
    console.print(t)
    shown = ", ".join(ds.classes[:12]) + (f", ... ({ds.num_classes} in all)" if ds.num_classes > 12 else "")
    console.print(f"classes ({ds.num_classes}): {shown}")
    console.print(
        "mean: " + ", ".join(f"{m:.4f}" for m in ds.mean) + "   std: " + ", ".join(f"{s:.4f}" for s in ds.std)
    )
    console.print(f"checksum: {ds.checksum}")


def run(args) -> int:
    from rich.console import Console

    from ..data import load_dataset
    from ..data.sources import get_spec

    if args.data_command == "list":
        return _list(args)
    if not args.name.lower().startswith("imagefolder:"):
        get_spec(args.name)  # unknown names fail here with a "did you mean" hint
    ds = load_dataset(args.name, data_dir=args.data_dir, download=not getattr(args, "no_download", False))
    _show(ds, Console())
    return 0
