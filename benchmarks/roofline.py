"""How close does training get to the machine's limit? lenet5_modern's training step against a large matmul.

1. The machine's peak: a 2048×2048 fp32 and bf16 matmul (GFLOP/s = 2·n³ / s), 1 and 2 threads.
2. The training step (forward, cross-entropy, backward, SGD; batch 256, 1×28×28 uint8 inputs through
   cnnzoo's preprocessing) in fp32 / bf16 autocast × NCHW / channels_last, and with ``torch.compile``;
   GFLOP/s = img/s × 3 × the analyzer's forward FLOPs per image (backward ≈ twice the forward).
3. The torch profiler's top operators of one configuration's steps.

Cells are interleaved (each configuration in turn, ``--repeat`` times) and the best and median reported, so
background load hits them alike. ``--plot docs/img/roofline.png`` draws the bars.

    .venv/bin/python benchmarks/roofline.py [--threads 2] [--repeat 3] [--compile] [--plot FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

import cnnzoo
from cnnzoo.card import card_of
from cnnzoo.preprocess import preprocess


def timed(fn, min_seconds: float) -> float:
    """Calls per second of ``fn`` over at least ``min_seconds`` (after one warm-up call)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while (dt := time.perf_counter() - t0) < min_seconds or n < 2:
        fn()
        n += 1
    return n / dt


def matmul_gflops(dtype: torch.dtype, n: int, min_seconds: float) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return timed(lambda: a @ b, min_seconds) * 2 * n**3 / 1e9


def train_step(name: str, batch: int, bf16: bool, channels_last: bool, compile_: bool = False, **kwargs):
    """A closure running one training step of ``name`` on a fixed random uint8 batch, and the FLOPs per image."""
    torch.manual_seed(0)
    model = cnnzoo.create_model(name, **kwargs)
    card = card_of(model)
    flops = cnnzoo.summary(model, input_size=card.input_size).to_dict()["total"]["flops"]
    if channels_last:
        model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    c, h, w = card.input_size
    images = torch.randint(0, 256, (batch, c, h, w), dtype=torch.uint8)
    labels = torch.randint(0, 10, (batch,))

    def step() -> None:
        x = preprocess(images, card, channels_last=channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        loss = F.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, flops


def profile(step, steps: int = 20, top: int = 10) -> str:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    step()
    with prof(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(steps):
            step()
    return p.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.5, help="minimum time per cell")
    p.add_argument("--compile", action="store_true", help="also torch.compile (fp32 and bf16, channels_last)")
    p.add_argument("--plot", help="write the bar chart to this PNG")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    print(
        f"{cpu}, {os.cpu_count()} cores, {args.threads} threads, torch {torch.__version__}, "
        f"oneDNN bf16: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"load {os.getloadavg()[0]:.1f}"
    )

    peaks: dict[str, list[float]] = {}
    configs = {
        f"{'bf16' if b else 'fp32'}{' + channels_last' if cl else ''}": (b, cl, False)
        for b in (False, True)
        for cl in (False, True)
    }
    if args.compile:
        configs |= {
            "fp32 + channels_last + compile": (False, True, True),
            "bf16 + channels_last + compile": (True, True, True),
        }
    steps = {}
    for name, (b, cl, comp) in configs.items():
        steps[name], flops = train_step("lenet5_modern", args.batch, b, cl, comp)
        if comp:
            t0 = time.perf_counter()
            steps[name]()
            print(f"  {name}: compiled in {time.perf_counter() - t0:.1f} s")
    ips: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for dtype in (torch.float32, torch.bfloat16):
            peaks.setdefault(str(dtype).split(".")[1], []).append(matmul_gflops(dtype, 2048, args.seconds))
        for name, step in steps.items():
            ips.setdefault(name, []).append(timed(step, args.seconds) * args.batch)
    print(f"\nload {os.getloadavg()[0]:.1f} after the cells\n")
    print("| what | best GFLOP/s | median GFLOP/s | best img/s | share of the fp32 matmul peak |")
    print("|---|---|---|---|---|")
    ref = max(peaks["float32"])
    for k, v in peaks.items():
        print(f"| 2048² matmul, {k} | {max(v):,.0f} | {statistics.median(v):,.0f} | | {max(v) / ref:.0%} |")
    rows = {}
    for name, v in ips.items():
        g = [x * 3 * flops / 1e9 for x in v]
        rows[name] = max(g)
        print(
            f"| lenet5_modern training step, {name} | {max(g):.1f} | {statistics.median(g):.1f} | "
            f"{max(v):,.0f} | {max(g) / ref:.1%} |"
        )
    best = max(ips, key=lambda k: max(ips[k]))
    print(f"\ntorch profiler, {best}, 20 steps of batch {args.batch}:\n")
    print(profile(steps[best]))
    if args.plot:
        plot(args.plot, {f"matmul {k}": max(v) for k, v in peaks.items()} | rows, cpu, args.threads)


def plot(path: str, bars: dict[str, float], cpu: str, threads: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.8))
    names = list(bars)
    ax.barh(
        names, [bars[n] for n in names], color=["#888" if n.startswith("matmul") else "#3a7" for n in names]
    )
    ax.set_xscale("log")
    ax.set_xlabel("GFLOP/s (log scale)")
    for i, n in enumerate(names):
        ax.text(bars[n], i, f" {bars[n]:,.0f}", va="center", fontsize=8)
    ax.set_title(f"lenet5_modern training vs a 2048² matmul: {cpu}, {threads} threads", fontsize=9)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
