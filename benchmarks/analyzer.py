"""cnnzoo's analyzer vs torchinfo and fvcore, in one run, on torchvision's own models.

    .venv/bin/python benchmarks/analyzer.py [--sizes 224,1024] [--repeat 7] [--models resnet152,timm:vit_base_patch16_224]

For each model and input size, the best wall time of N calls (after a warm-up call; the tools' calls
interleaved; medians also printed) of ``cnnzoo.summary`` (meta device), ``torchinfo.summary`` (a real
forward pass) and fvcore's ``FlopCountAnalysis`` (a JIT trace + real forward), the ratios, and the totals side
by side (parameters must be equal; MACs within 0.5%, each difference explained in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time
import warnings

import torch
import torchvision

from cnnzoo.analysis.summary import summary

MODELS = ("alexnet", "vgg16", "resnet50", "resnet152")
# timm's models: functional batch norm and activations, attention, layer norm (the analyzer's dispatcher path)
TIMM_MODELS = (
    "timm:mobilenetv3_large_100",
    "timm:efficientnet_b0",
    "timm:convnext_tiny",
    "timm:regnety_008",
    "timm:vit_base_patch16_224",
)


def _build(name: str) -> torch.nn.Module:
    """A torchvision model by name, or ``timm:NAME``; random weights, eval mode."""
    if name.startswith("timm:"):
        import timm

        return timm.create_model(name.removeprefix("timm:")).eval()
    return getattr(torchvision.models, name)().eval()


def _interleaved(fns: dict, repeat: int) -> tuple[dict, dict, dict]:
    """Best and median wall time of each function, after one warm-up call each. The calls alternate
    (A B C A B C …) so that a slow minute on a shared machine weighs on every tool alike. The best time is
    timeit's statistic (other processes only ever add time); the median is printed beside it."""
    out = {k: f() for k, f in fns.items()}  # warm-up: first-call costs (imports, caches) are not the tool's
    times: dict = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            start = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - start)
    return {k: min(v) for k, v in times.items()}, {k: statistics.median(v) for k, v in times.items()}, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="224,1024")
    ap.add_argument("--models", default=",".join(MODELS + TIMM_MODELS))
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    import torchinfo
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    print(
        f"# {platform.node()}: {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"torchinfo {torchinfo.__version__}"
    )
    header = (
        "model",
        "input",
        "cnnzoo s",
        "torchinfo s",
        "fvcore s",
        "torchinfo/cnnzoo",
        "fvcore/cnnzoo",
        "torchinfo/cnnzoo (medians)",
        "params cnnzoo",
        "params torchinfo",
        "GMACs cnnzoo",
        "GMACs torchinfo",
        "GMACs fvcore",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in args.models.split(","):
        model = _build(name)
        for side in map(int, args.sizes.split(",")):
            size = (3, side, side)
            rep = 1 if side > 224 else args.repeat  # the others run the real network: once is enough at 1024

            def fvcore_total(m=model, s=size):
                with torch.no_grad():
                    fca = FlopCountAnalysis(m, torch.zeros(1, *s))
                    return fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False).total()

            t, med, out = _interleaved(
                {
                    "ours": lambda m=model, s=size: summary(m, s),
                    "torchinfo": lambda m=model, s=size: torchinfo.summary(m, (1, *s), verbose=0),
                    "fvcore": fvcore_total,
                },
                rep,
            )
            t_ours, t_ti, t_fv = t["ours"], t["torchinfo"], t["fvcore"]
            ours, ti, fv = out["ours"], out["torchinfo"], out["fvcore"]
            print(
                f"| {name} | {side} | {t_ours:.3f} | {t_ti:.3f} | {t_fv:.3f} | {t_ti / t_ours:.0f}× | "
                f"{t_fv / t_ours:.0f}× | {med['torchinfo'] / med['ours']:.0f}× | {ours.total['params']:,} | {ti.total_params:,} | "
                f"{ours.total['macs'] / 1e9:.3f} | {ti.total_mult_adds / 1e9:.3f} | {fv / 1e9:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
