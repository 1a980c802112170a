"""The 1×1 convolution arithmetic of Ng's lecture video, counted by the analyzer and timed on this machine.

Ng's lecture video (the Inception motivation) works on a 28×28×192 input and rounds its counts (~120M
vs ~2.4M + ~10.0M = ~12.4M multiplications); the exact counts are cnnzoo's arithmetic:

    naive        5×5 conv, 32 filters, 'same'                    120,422,400 MACs
    bottleneck   1×1 conv to 16 channels, then 5×5 conv to 32     2,408,448 + 10,035,200 = 12,443,648 MACs
    channel mix  1×1 conv, 32 filters                             6,176 params, 4,816,896 MACs, 28×28×32 out

The MACs come from :func:`cnnzoo.summary` (never from the formulas below, which only serve as the check
printed next to them). Each conv is then timed alone over batches 1, 8 and 64 on one and two threads, to
show how much of the 9.7× saving this machine sees; the report states only what those timings show.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from ..plots import new_figure, save_figure
from .report import Report, begin, finish
from .table import get_experiment

NAME = "bottleneck-1x1"
SOURCE = "Ng's course; Szegedy et al. 2014 (Inception)"
CLAIM = "a 1×1 bottleneck cuts the 5×5 conv's cost from 120,422,400 to 12,443,648 MACs (~10×)"
INPUT = (192, 28, 28)  # (C, H, W): the course's 28×28×192 feature map


@dataclass(frozen=True)
class Case:
    """One network of the comparison: a registered model name, else a stack of plain convs."""

    key: str
    title: str
    registered: str  # the zoo's name for it, used when registered
    convs: tuple[tuple[int, int], ...]  # (out_channels, kernel) per conv, 'same' padding, ReLU after each
    expected_macs: int  # cnnzoo's exact arithmetic (the lecture rounds it), checked against the analyzer
    expected_params: int | None = None


CASES = [
    Case("naive", "5×5 conv, 32 filters", "inception_naive_5x5", ((32, 5),), 120_422_400),
    Case(
        "bottleneck", "1×1 to 16, then 5×5 to 32", "inception_bottleneck_5x5", ((16, 1), (32, 5)), 12_443_648
    ),
    Case("conv1x1", "1×1 conv, 32 filters", "", ((32, 1),), 4_816_896, 6_176),
]


def build(case: Case):
    """The registered model if the zoo has it, else ``Conv2d(k, 'same') + ReLU`` per row of ``case.convs``."""
    from torch import nn

    from ..models import list_models

    if case.registered and case.registered in list_models():
        from ..models import create_model

        return create_model(case.registered), case.registered
    layers, c_in = [], INPUT[0]
    for c_out, k in case.convs:
        layers += [nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.ReLU(inplace=True)]
        c_in = c_out
    return nn.Sequential(*layers), "plain nn.Conv2d modules"


def formula_macs(case: Case) -> int:
    """k·k·c_in per output value × c_out·H·W outputs, summed over the convs ('same': H, W unchanged)."""
    total, c_in = 0, INPUT[0]
    for c_out, k in case.convs:
        total += k * k * c_in * c_out * INPUT[1] * INPUT[2]
        c_in = c_out
    return total


# The convs timed one by one (plain nn.Conv2d, 'same' padding, no ReLU): (key, title, c_in, c_out, kernel);
# "bottleneck" is the reduce and the 5×5 on 16 channels run back to back, timed as one.
LAYERS = (
    ("direct", "5×5 conv 192→32 (direct)", 192, 32, 5),
    ("reduce", "1×1 conv 192→16 (the reduce)", 192, 16, 1),
    ("conv5_16", "5×5 conv 16→32 (after the reduce)", 16, 32, 5),
    ("bottleneck", "reduce + 5×5 on 16 channels", 192, 32, 0),
    ("conv1x1", "1×1 conv 192→32", 192, 32, 1),
)
BATCHES = (1, 8, 64)
THREADS = (1, 2)


def timing_nets() -> dict:
    from torch import nn

    def conv(c_in: int, c_out: int, k: int):
        return nn.Conv2d(c_in, c_out, k, padding=k // 2)

    nets = {key: conv(c_in, c_out, k) for key, _, c_in, c_out, k in LAYERS if k}
    nets["bottleneck"] = nn.Sequential(conv(192, 16, 1), conv(16, 32, 5))
    return nets


def time_layers(macs: dict, device: str, reps: int, batches=BATCHES, threads=THREADS) -> list[dict]:
    """Wall time of one forward of each of :data:`LAYERS`, per (threads, batch), in milliseconds.

    The repeats are interleaved (each repeat runs every layer once, starting at a different one), so a
    neighbour's burst of load hits every layer alike instead of one layer's whole series. Both the best-of
    (the machine at its quietest) and the median are kept. ``macs`` are the analyzer's per-image counts."""
    import torch

    nets = {k: m.to(device).eval() for k, m in timing_nets().items()}
    keys = list(nets)
    inputs = {key: c_in for key, _, c_in, _, _ in LAYERS}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    before, rows = torch.get_num_threads(), []
    try:
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            for batch in batches:
                xs = {k: torch.randn(batch, inputs[k], *INPUT[1:], device=device) for k in keys}
                times: dict[str, list[float]] = {k: [] for k in keys}
                with torch.inference_mode():
                    for rep in range(reps + 2):  # two warm-up rounds
                        for k in keys[rep % len(keys) :] + keys[: rep % len(keys)]:
                            sync()
                            t0 = time.perf_counter()
                            nets[k](xs[k])
                            sync()
                            if rep >= 2:
                                times[k].append((time.perf_counter() - t0) * 1000)
                layers = {}
                for k in keys:
                    best, med = min(times[k]), statistics.median(times[k])
                    layers[k] = {"min_ms": best, "median_ms": med, "gmac_per_s": macs[k] * batch / best / 1e6}
                rows.append(
                    {
                        "threads": n_threads,
                        "batch": batch,
                        "layers": layers,
                        "speedup_min": layers["direct"]["min_ms"] / layers["bottleneck"]["min_ms"],
                        "speedup_median": layers["direct"]["median_ms"] / layers["bottleneck"]["median_ms"],
                    }
                )
    finally:
        torch.set_num_threads(before)
    return rows


def conclusion(rows: list[dict], mac_ratio: float) -> list[str]:
    """What the timings show, and no more: the measured speed-up against the MAC ratio, per thread count, and
    which layer runs the fewest MACs per second."""
    lines = []
    for n_threads in sorted({r["threads"] for r in rows}):
        mine = [r for r in rows if r["threads"] == n_threads]
        ups = ", ".join(
            f"batch {r['batch']}: {r['speedup_min']:.2f}× ({r['speedup_median']:.2f}× by medians)"
            for r in mine
        )
        lines.append(
            f"{n_threads} thread{'s' if n_threads > 1 else ''}: the bottleneck is faster than the direct "
            f"5×5 by {ups}, against {mac_ratio:.2f}× fewer MACs."
        )
    for r in rows:
        rates = {k: v["gmac_per_s"] for k, v in r["layers"].items() if k != "bottleneck"}
        r["slowest_per_mac"] = min(rates, key=rates.get)
    slow = {r["slowest_per_mac"] for r in rows}
    names = dict((key, title) for key, title, *_ in LAYERS)
    lines.append(
        "Lowest MAC throughput (GMAC/s, best-of) among the single convs: "
        + "; ".join(
            f"{names[k]} in {sum(r['slowest_per_mac'] == k for r in rows)} of {len(rows)} settings"
            for k in sorted(slow)
        )
        + ". Where the speed-up falls short of the MAC ratio, the bottleneck's convs run fewer MACs per second "
        "than the direct 5×5; these timings do not say why (memory traffic, the convolution algorithm torch "
        "picks, per-call overhead are candidates), only how far MACs predict time on this machine at these sizes."
    )
    return lines


def run(out_dir: Path, quick: bool = False, seeds: int = 1, device: str = "auto") -> dict:
    import torch

    from ..analysis import summary

    started, out_dir, device = begin(out_dir, device)
    reps = 3 if quick else 30
    settings = {
        "input": list(INPUT),
        "batches (timing)": list(BATCHES),
        "torch threads (timing)": list(THREADS),
        "repetitions": f"{reps}, interleaved, after 2 warm-up rounds",
        "quick": quick,
        "seeds": seeds,
        "torch threads (default)": torch.get_num_threads(),
    }

    results: dict = {}
    for case in CASES:
        model, source = build(case)
        s = summary(model, input_size=INPUT).to_dict()
        # the course counts the convs only; a registered model may add a small classifier head after them
        convs = [layer for layer in s["layers"] if layer["type"] == "Conv2d"]
        results[case.key] = {
            "title": case.title,
            "built_from": source,
            "macs": sum(layer["macs"] for layer in convs),
            "params": sum(layer["params"] for layer in convs),
            "total_macs": s["total"]["macs"],
            "layer_macs": [layer["macs"] for layer in convs],
            "output_shape": convs[-1]["output_shape"],
            "receptive_field": s["total"].get("receptive_field", {}).get("size"),
            "formula_macs": formula_macs(case),
            "expected_macs": case.expected_macs,
            "expected_params": case.expected_params,
        }
    naive, bottle = results["naive"], results["bottleneck"]
    results["mac_ratio"] = naive["macs"] / bottle["macs"]
    results["claim_holds"] = all(results[c.key]["macs"] == c.expected_macs for c in CASES) and (
        results["conv1x1"]["params"] == 6_176
    )
    macs = {
        "direct": naive["macs"],
        "reduce": bottle["layer_macs"][0],
        "conv5_16": bottle["layer_macs"][1],
        "bottleneck": bottle["macs"],
        "conv1x1": results["conv1x1"]["macs"],
    }
    results["layer_macs"] = macs
    results["timing"] = time_layers(macs, device, reps)
    results["conclusion"] = conclusion(results["timing"], results["mac_ratio"])
    plot = _plot(results, macs, device, out_dir)

    info = get_experiment(NAME)
    report = Report("1×1 convolutions: the Inception bottleneck", info)
    report.heading("Cost, counted by the analyzer")
    rows = []
    for c in CASES:
        r = results[c.key]
        rows.append(
            (
                r["title"],
                r["built_from"],
                " + ".join(f"{m:,}" for m in r["layer_macs"]),
                r["macs"],
                c.expected_macs,
                r["formula_macs"],
                r["params"],
                "×".join(map(str, r["output_shape"])),
                r["total_macs"],
            )
        )
    report.table(
        [
            "network",
            "built from",
            "MACs per conv",
            "conv MACs (analyzer)",
            "expected (cnnzoo's arithmetic)",
            "k·k·c_in·c_out·H·W",
            "conv params",
            "output C×H×W",
            "whole model MACs",
        ],
        rows,
    )
    report.para(
        f"The bottleneck needs {results['mac_ratio']:.2f}× fewer MACs than the naive 5×5 conv "
        f"(120,422,400 / 12,443,648 = 9.68; Ng's lecture video rounds them to ~120M and ~12.4M). The 1×1 conv "
        f"maps 28×28×192 to {'×'.join(map(str, results['conv1x1']['output_shape']))} with "
        f"{results['conv1x1']['params']:,} parameters ((1·1·192 + 1)·32 = 6,176) and "
        f"{results['conv1x1']['macs']:,} MACs (28·28·192·32)."
    )
    report.heading("Measured on this machine, per layer")
    names = {key: title for key, title, *_ in LAYERS}
    report.table(
        [
            "threads",
            "batch",
            *[f"{names[k]}: ms best / median (GMAC/s)" for k in names],
            "speed-up best-of (median)",
        ],
        [
            (
                r["threads"],
                r["batch"],
                *[
                    f"{v['min_ms']:.3g} / {v['median_ms']:.3g} ({v['gmac_per_s']:.3g})"
                    for v in r["layers"].values()
                ],
                f"{r['speedup_min']:.2f}× ({r['speedup_median']:.2f}×)",
            )
            for r in results["timing"]
        ],
    )
    for line in results["conclusion"]:
        report.para(line)
    report.image(plot, "MACs per layer, and the measured speed-up against the MAC ratio")
    verdict = "reproduced exactly" if results["claim_holds"] else "NOT reproduced: see the table"
    report.para(
        f"**Verdict:** the MAC counts are {verdict}; the time saving is what the table above measures."
    )
    return finish(report, out_dir, NAME, settings, results, started, device)


def _plot(results: dict, macs: dict, device: str, out_dir: Path) -> str:
    fig, (ax1, ax2, ax3) = new_figure(3, width=4.4)
    names = {key: title for key, title, *_ in LAYERS}
    singles = [k for k in names if k != "bottleneck"]
    colors = {"direct": "#c44", "reduce": "#4a4", "conv5_16": "#8c4", "conv1x1": "#48c", "bottleneck": "#484"}
    ax1.barh(
        [names[k] for k in singles], [macs[k] / 1e6 for k in singles], color=[colors[k] for k in singles]
    )
    ax1.invert_yaxis()
    ax1.set(xlabel="million MACs per image (analyzer)", title="cost on 28×28×192")
    ax1.tick_params(axis="y", labelsize=7)
    timing = results["timing"]
    for n_threads, ls in zip(THREADS, ("-", "--"), strict=True):
        mine = [r for r in timing if r["threads"] == n_threads]
        ax2.plot(
            [r["batch"] for r in mine],
            [r["speedup_min"] for r in mine],
            ls=ls,
            marker="o",
            color="k",
            label=f"{n_threads} thread{'s' if n_threads > 1 else ''}",
        )
        for k in singles:
            ax3.plot(
                [r["batch"] for r in mine],
                [r["layers"][k]["gmac_per_s"] for r in mine],
                ls=ls,
                marker=".",
                color=colors[k],
                label=f"{names[k]}, {n_threads}t",
            )
    ax2.axhline(
        results["mac_ratio"], color="tab:red", lw=1, ls=":", label=f"MAC ratio {results['mac_ratio']:.2f}×"
    )
    ax2.set(
        xscale="log",
        xlabel="batch",
        ylabel="direct / bottleneck time (best-of)",
        ylim=(0, None),
        title=f"measured speed-up ({device})",
    )
    ax3.set(
        xscale="log", yscale="log", xlabel="batch", ylabel="GMAC/s (best-of)", title="throughput per layer"
    )
    ax2.legend(fontsize=7, loc="best")
    ax3.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    for ax in (ax2, ax3):
        ax.set_xticks(list(BATCHES), [str(b) for b in BATCHES])
        ax.grid(alpha=0.3)
    return save_figure(fig, out_dir, "exp-bottleneck-1x1.png")
