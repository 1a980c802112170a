"""cnnzoo's analyzer vs torchinfo and fvcore, in one run, on torchvision's own models.

    .venv/bin/python benchmarks/analyzer.py [--sizes 224,1024] [--repeat 3]

For each model and input size: wall time of ``cnnzoo.summary`` (meta device), ``torchinfo.summary`` (a real
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


def _time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="224,1024")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import torchinfo
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    print(f"# {platform.node()}: {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"torchinfo {torchinfo.__version__}")  # fmt: skip
    header = ("model", "input", "cnnzoo s", "torchinfo s", "fvcore s", "torchinfo/cnnzoo", "fvcore/cnnzoo",
              "params cnnzoo", "params torchinfo", "GMACs cnnzoo", "GMACs torchinfo", "GMACs fvcore")  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in args.models.split(","):
        model = getattr(torchvision.models, name)().eval()
        for side in map(int, args.sizes.split(",")):
            size = (3, side, side)
            t_ours, ours = _time(lambda m=model, s=size: summary(m, s), args.repeat)
            rep = 1 if side > 224 else args.repeat  # the others run the real network: once is enough at 1024
            t_ti, ti = _time(lambda m=model, s=size: torchinfo.summary(m, (1, *s), verbose=0), rep)
            with torch.no_grad():
                t_fv, fv = _time(lambda m=model, s=size: FlopCountAnalysis(m, torch.zeros(1, *s)).unsupported_ops_warnings(False)
                                 .uncalled_modules_warnings(False).total(), rep)  # fmt: skip
            print(
                f"| {name} | {side} | {t_ours:.3f} | {t_ti:.3f} | {t_fv:.3f} | {t_ti / t_ours:.0f}× | "
                f"{t_fv / t_ours:.0f}× | {ours.total['params']:,} | {ti.total_params:,} | "
                f"{ours.total['macs'] / 1e9:.3f} | {ti.total_mult_adds / 1e9:.3f} | {fv / 1e9:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
