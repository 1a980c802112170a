"""Does the one trainer reproduce the experiments' old one? Same net, recipe, data and seed through both.

Issue #15 replaced the experiments' own training loop (``experiments/runner.py: train_curves`` before commit
c783329) with ``cnnzoo.fit``. This script trains one CIFAR-style net of the degradation experiment (He et
al.'s recipe: SGD 0.1, momentum 0.9, wd 1e-4, batch 128, lr /10 at 50% and 75%, one warm-up epoch, 4-pixel
crops and flips, Fashion-MNIST padded to 32×32) through either trainer, one torch thread, and appends the
per-epoch training and test errors to a JSON-lines file; ``--report`` prints the side-by-side table of
docs/experiments.md.

    git worktree add /tmp/cnnzoo-old c783329^                         # the old trainer's code
    PYTHONPATH=/tmp/cnnzoo-old/src .venv/bin/python scripts/trainer_parity.py old resnet20 0
    .venv/bin/python scripts/trainer_parity.py new resnet20 0 [--set decay_all=true]
    .venv/bin/python scripts/trainer_parity.py --report

``--set K=V`` overrides a TrainConfig field of the new trainer (V is JSON), to test what a difference is due
to. The old trainer ran fp32 on a CPU; the new one runs the machine's defaults (bf16 autocast + channels_last
where the CPU has bf16 units), as ``cnnzoo experiment`` does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("trainer_parity.jsonl")  # committed: the figures of docs/experiments.md


def train(which: str, model: str, seed: int, epochs: int, subset: int, overrides: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    common = dict(epochs=epochs, batch_size=128, warmup_epochs=1.0, pad_to=32, train_subset=subset)
    if which == "old":  # the pre-#15 code, from PYTHONPATH
        from cnnzoo.data import load_dataset
        from cnnzoo.experiments.runner import TrainSettings, seed_everything, train_curves
        from cnnzoo.models import create_model

        data = load_dataset("fashion-mnist", download=False)
        seed_everything(seed)
        net = create_model(model, num_classes=10, in_channels=1)
        return train_curves(net, data, TrainSettings(**common), "cpu", seed, label=f"old {model}")
    from cnnzoo.experiments import training
    from cnnzoo.experiments.degradation import build

    config = training.train_config

    def with_overrides(settings, device, s):
        cfg = config(settings, device, s)
        for k, v in overrides.items():
            setattr(cfg, k, v)
        overrides["decay_all"] = (
            cfg.decay_all
        )  # recorded: the one setting the two loops are known to differ in
        return cfg

    training.train_config = with_overrides
    return training.train_job(
        build, {"name": model, "in_channels": 1}, training.TrainSettings(**common), "cpu", seed
    )


def _final(key: str, r: dict) -> float:
    """The experiments' "final" error: the mean of the last 3 epochs, in %."""
    return 100 * statistics.mean(r[key][-3:])


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def report() -> None:
    rows: dict[tuple, list[dict]] = {}
    for line in RESULTS.read_text().splitlines():
        r = json.loads(line)
        key = (r["model"], r["which"], json.dumps(r["set"], sort_keys=True), r["epochs"], r["subset"])
        rows.setdefault(key, []).append(r)
    print("| net | trainer | seeds | final training error | final test error | per seed (test) |")
    print("|---|---|---|---|---|---|")
    for (model, which, overrides, epochs, subset), runs in sorted(rows.items()):
        runs = sorted(runs, key=lambda r: r["seed"])
        tr = [_final("train_error", r) for r in runs]
        te = [_final("test_error", r) for r in runs]
        changed = json.loads(overrides)
        name = which + (f" ({', '.join(f'{k}={v}' for k, v in changed.items())})" if changed else "")
        print(
            f"| {model} ({epochs} epochs, {subset:,} images) | {name} | {', '.join(str(r['seed']) for r in runs)} "
            f"| {statistics.mean(tr):.2f} ± {_sd(tr):.2f}% | {statistics.mean(te):.2f} ± {_sd(te):.2f}% "
            f"| {', '.join(f'{v:.2f}%' for v in te)} |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("which", nargs="?", choices=("old", "new"))
    p.add_argument("model", nargs="?", default="resnet20")
    p.add_argument("seed", nargs="?", type=int, default=0)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--subset", type=int, default=10_000, help="the first N training images")
    p.add_argument("--set", action="append", default=[], metavar="K=V", help="new trainer: TrainConfig field")
    p.add_argument("--report", action="store_true")
    a = p.parse_args()
    if a.report or not a.which:
        return report()
    overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in a.set)}
    t0 = time.time()
    h = train(a.which, a.model, a.seed, a.epochs, a.subset, overrides)
    rec = dict(
        which=a.which,
        set=overrides,
        model=a.model,
        seed=a.seed,
        epochs=a.epochs,
        subset=a.subset,
        train_error=h["train_error"],
        test_error=h["test_error"],
        seconds=round(time.time() - t0, 1),
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec))


if __name__ == "__main__":
    main()
