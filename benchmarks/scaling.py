"""Scaling curves: training throughput against batch size and against model cost, on 1 and 2 threads.

The training step of benchmarks/roofline.py (preprocessing, forward, loss, backward, SGD on a fixed uint8
batch) with the machine's defaults (channels_last; bf16 autocast where oneDNN has bf16 units). Cells are
interleaved over ``--repeat`` rounds and the best kept. Models: lenet5_modern (1×28×28), resnet20 and vgg11
at 3×32×32 (their analyzer FLOPs per image set the x axis of the second plot).

    .venv/bin/python benchmarks/scaling.py [--repeat 2] [--plot docs/img/scaling.png]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from roofline import timed, train_step  # noqa: E402

from cnnzoo.train.loop import fast_bf16  # noqa: E402

MODELS = {"lenet5_modern": {}, "resnet20": {}, "vgg11": {"input_size": 32, "num_classes": 10}}
BATCHES = (16, 32, 64, 128, 256, 512)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--plot", help="write the two plots side by side to this PNG")
    args = p.parse_args()
    bf16 = fast_bf16(torch.device("cpu"))
    cells: dict[tuple[str, int, int], float] = {}
    flops: dict[str, int] = {}
    plan = [("lenet5_modern", b) for b in BATCHES] + [(m, 128) for m in MODELS if m != "lenet5_modern"]
    for _ in range(args.repeat):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for name, batch in plan:
                step, flops[name] = train_step(name, batch, bf16, True, **MODELS[name])
                ips = timed(step, args.seconds) * batch
                cells[name, batch, threads] = max(ips, cells.get((name, batch, threads), 0.0))
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    print(
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {'bf16 + ' if bf16 else ''}channels_last, "
        f"best of {args.repeat}, {time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| model | batch | FLOPs/img (fwd) | 1 thread img/s | 2 threads img/s | 2 threads GFLOP/s (3× fwd) | 2 vs 1 |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, batch in plan:
        one, two = cells[name, batch, 1], cells[name, batch, 2]
        print(
            f"| {name} | {batch} | {flops[name] / 1e6:.2f} M | {one:,.0f} | {two:,.0f} | "
            f"{two * 3 * flops[name] / 1e9:.1f} | {two / one:.2f}× |"
        )
    if args.plot:
        plot(args.plot, cells, flops, cpu)


def plot(path: str, cells, flops, cpu: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for threads, style in ((1, "o-"), (2, "s-")):
        a.plot(
            BATCHES,
            [cells["lenet5_modern", bs, threads] for bs in BATCHES],
            style,
            label=f"{threads} thread(s)",
        )
        names = list(MODELS)
        b.plot(
            [flops[n] for n in names],
            [cells[n, 128, threads] * 3 * flops[n] / 1e9 for n in names],
            style,
            label=f"{threads} thread(s)",
        )
        if threads == 2:
            for n in names:
                b.annotate(n, (flops[n], cells[n, 128, 2] * 3 * flops[n] / 1e9), fontsize=8)
    a.set(xscale="log", xlabel="batch size", ylabel="img/s", title="lenet5_modern: throughput vs batch")
    a.set_xticks(BATCHES, [str(bs) for bs in BATCHES], minor=False)
    a.set_xticks([], minor=True)
    b.set(
        xscale="log",
        xlabel="forward FLOPs per image",
        ylabel="achieved GFLOP/s (training, 3× forward)",
        title="batch 128: work per image vs achieved rate",
    )
    for ax in (a, b):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(cpu, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
