"""The 1×1 convolution arithmetic of Ng's course, counted by the analyzer and timed on this machine.

Ng's course (the Inception motivation), on a 28×28×192 input:

    naive        5×5 conv, 32 filters, 'same'                    120,422,400 MACs
    bottleneck   1×1 conv to 16 channels, then 5×5 conv to 32     2,408,448 + 10,035,200 = 12,443,648 MACs
    channel mix  1×1 conv, 32 filters                             6,176 params, 4,816,896 MACs, 28×28×32 out

The MACs come from :func:`cnnzoo.summary` (never from the formulas below, which only serve as the check
printed next to them), and the wall time of a forward pass shows how much of the 9.7× saving a real
machine sees (small 1×1 convs are memory-bound, so the speed-up is smaller than the MAC ratio).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from ..plots import new_figure, save_figure
from .report import Report, begin, finish
from .stats import mean_std
from .table import get_experiment

NAME = "bottleneck-1x1"
INPUT = (192, 28, 28)  # (C, H, W): the course's 28×28×192 feature map


@dataclass(frozen=True)
class Case:
    """One network of the comparison: a registered model name, else a stack of plain convs."""

    key: str
    title: str
    registered: str  # the zoo's name for it, used when registered
    convs: tuple[tuple[int, int], ...]  # (out_channels, kernel) per conv, 'same' padding, ReLU after each
    seed_macs: int  # the course's number, shown next to the analyzer's
    seed_params: int | None = None


CASES = [
    Case("naive", "5×5 conv, 32 filters", "inception_naive_5x5", ((32, 5),), 120_422_400),
    Case("bottleneck", "1×1 to 16, then 5×5 to 32", "inception_bottleneck_5x5", ((16, 1), (32, 5)), 12_443_648),
    Case("conv1x1", "1×1 conv, 32 filters", "", ((32, 1),), 4_816_896, 6_176),
]  # fmt: skip


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


def time_forward(model, device: str, batch: int, reps: int) -> dict:
    """Wall time of a forward pass of ``batch`` random 192×28×28 inputs, in milliseconds. The minimum over
    the repetitions is the figure compared: on a shared machine the others only add other programs' noise."""
    import torch

    model = model.to(device).eval()
    x = torch.randn(batch, *INPUT, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(reps + 2):  # two warm-up passes
            sync()
            t0 = time.perf_counter()
            model(x)
            sync()
            if i >= 2:
                times.append((time.perf_counter() - t0) * 1000)
    return {"min_ms": min(times), "median_ms": statistics.median(times), **mean_std(times)}


def run(out_dir: Path, quick: bool = False, seeds: int = 1, device: str = "auto") -> dict:
    import torch

    from ..analysis import summary

    started, out_dir, device = begin(out_dir, device)
    batch, reps = (8, 10) if quick else (64, 30)
    settings = {"input": list(INPUT), "batch (timing)": batch, "repetitions": reps, "quick": quick,
                "seeds": seeds, "torch threads": torch.get_num_threads()}  # fmt: skip

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
            "seed_macs": case.seed_macs,
            "seed_params": case.seed_params,
            "time": time_forward(model, device, batch, reps),
        }
    naive, bottle = results["naive"], results["bottleneck"]
    results["mac_ratio"] = naive["macs"] / bottle["macs"]
    results["time_ratio"] = naive["time"]["min_ms"] / bottle["time"]["min_ms"]
    results["claim_holds"] = all(results[c.key]["macs"] == c.seed_macs for c in CASES) and (
        results["conv1x1"]["params"] == 6_176
    )

    # plot: MACs (analyzer) and measured time side by side
    fig, (ax1, ax2) = new_figure(2, width=4.6)
    labels = [results[c.key]["title"].replace(", ", ",\n") for c in CASES]
    ax1.bar(labels, [results[c.key]["macs"] / 1e6 for c in CASES], color=["#c44", "#4a4", "#48c"])
    ax1.set_ylabel("million MACs (analyzer)")
    ax1.set_title("cost on 28×28×192")
    ax2.bar(labels, [results[c.key]["time"]["min_ms"] for c in CASES], color=["#c44", "#4a4", "#48c"])
    ax2.set_ylabel(f"ms per forward, batch {batch} ({device})")
    ax2.set_title("measured time")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelsize=8)
    plot = save_figure(fig, out_dir, "exp-bottleneck-1x1.png")

    info = get_experiment(NAME)
    report = Report("1×1 convolutions: the Inception bottleneck", info)
    report.heading("Cost, counted by the analyzer")
    rows = []
    for c in CASES:
        r = results[c.key]
        rows.append((r["title"], r["built_from"], " + ".join(f"{m:,}" for m in r["layer_macs"]), r["macs"],
                     c.seed_macs, r["formula_macs"], r["params"], "×".join(map(str, r["output_shape"])), r["total_macs"]))  # fmt: skip
    report.table(["network", "built from", "MACs per conv", "conv MACs (analyzer)", "MACs (Ng's course)",
                  "k·k·c_in·c_out·H·W", "conv params", "output C×H×W", "whole model MACs"], rows)  # fmt: skip
    report.para(
        f"The bottleneck needs {results['mac_ratio']:.2f}× fewer MACs than the naive 5×5 conv "
        f"(Ng's course: 120,422,400 / 12,443,648 = 9.68). The 1×1 conv maps 28×28×192 to "
        f"{'×'.join(map(str, results['conv1x1']['output_shape']))} with {results['conv1x1']['params']:,} "
        f"parameters ((1·1·192 + 1)·32 = 6,176) and {results['conv1x1']['macs']:,} MACs (28·28·192·32)."
    )
    report.heading("Measured on this machine")
    report.table(["network", "ms per forward (min)", "median", "mean ± std"],
                 [(results[c.key]["title"], results[c.key]["time"]["min_ms"], results[c.key]["time"]["median_ms"],
                   results[c.key]["time"])
                  for c in CASES])  # fmt: skip
    report.para(
        f"Measured speed-up of the bottleneck: {results['time_ratio']:.2f}× against {results['mac_ratio']:.2f}× "
        "fewer MACs. The gap is memory traffic and per-layer overhead, which MACs do not count."
    )
    report.image(plot, "MACs and measured time")
    verdict = "reproduced exactly" if results["claim_holds"] else "NOT reproduced: see the table"
    report.para(f"**Verdict:** the course's figures are {verdict}.")
    return finish(report, out_dir, NAME, settings, results, started, device)
