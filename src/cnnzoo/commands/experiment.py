"""``cnnzoo experiment list`` / ``cnnzoo experiment NAME [--quick] [--seeds N] [--device D] [--out DIR]``.

Runs one of the claims (``cnnzoo.experiments``) and writes ``report.md``, PNG plots and
``results.json`` into ``--out`` (default ``runs/experiments/NAME``).
"""

NAME = "experiment"
HELP = "reproduce a claim of the papers and courses (list, degradation, lrn, small-kernels, ...)"


def add_arguments(p) -> None:
    from ..options import Rule

    p.add_argument("name", help="experiment name, or 'list' to show them all")
    p.add_argument(
        "--quick", action="store_true", help="a small version that finishes in about a minute on a CPU"
    )
    p.add_argument(
        "--seeds",
        type=Rule(int, 1, 100).argtype("--seeds"),
        default=1,
        help="repeat training with N seeds; report mean ± std",
    )
    p.add_argument(
        "--epochs",
        type=Rule(int, 1, 10_000).argtype("--epochs"),
        default=None,
        help="override the experiment's number of epochs",
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--out", default=None, help="output folder (default runs/experiments/NAME)")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset files (searched first)")


def run(args) -> int:
    import os

    from rich.console import Console
    from rich.table import Table

    from ..experiments import list_experiments, run_experiment

    console = Console()
    if args.name == "list":
        table = Table("name", "source", "claim", box=None)
        for e in list_experiments():
            table.add_row(e.name, e.source, e.claim)
        console.print(table)
        return 0
    out = args.out or os.path.join("runs", "experiments", args.name)
    doc = run_experiment(
        args.name,
        out,
        quick=args.quick,
        seeds=args.seeds,
        device=args.device,
        epochs=args.epochs,
        data_dir=args.data_dir,
    )
    console.print(
        f"{args.name}: done in {doc.get('seconds', 0):.1f} s; report: {os.path.join(out, 'report.md')}"
    )
    return 0
