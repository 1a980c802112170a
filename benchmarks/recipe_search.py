"""Recipe search for ``cnnzoo train lenet5_modern``: candidate recipes × seeds, test accuracy per epoch.

Each run is what ``cnnzoo train lenet5_modern --seed S`` does with the candidate's options (the initial
weights from ``torch.manual_seed(S)``, 10% of the training set held out for validation, the machine's
defaults for bf16 and channels_last), plus the test accuracy after every epoch. Accuracy does not depend on
the machine's load, so the runs can share a busy machine; one thread each keeps them out of each other's way.
Results are appended to a JSON-lines file, one line per (candidate, seed), so an interrupted search resumes
where it stopped; ``--report`` prints the table of docs/training.md.

    .venv/bin/python benchmarks/recipe_search.py --candidates sgd6 sgd6_bs64 --seeds 0 1 2 3 4
    .venv/bin/python benchmarks/recipe_search.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts (cnnzoo.threads says why)

TARGET = 0.91
RESULTS = Path(__file__).with_name("recipe_search.jsonl")
BASE = dict(batch_size=128, lr=0.05, optimizer="sgd", schedule="onecycle", weight_decay=5e-4, crop_padding=0)

# name -> (TrainConfig options, why it is a candidate)
CANDIDATES: dict[str, tuple[dict, str]] = {
    "sgd12": (BASE | dict(epochs=12), "the recipe before issue #20"),
    "sgd6": (BASE | dict(epochs=6), "the same, half the epochs"),
    "sgd6_bs64": (BASE | dict(epochs=6, batch_size=64), "twice the steps per epoch"),
    "sgd6_bs64_lr1": (BASE | dict(epochs=6, batch_size=64, lr=0.1), "twice the steps, a higher peak"),
    "sgd6_bs64_ls": (
        BASE | dict(epochs=6, batch_size=64, label_smoothing=0.1),
        "twice the steps, label smoothing 0.1",
    ),
    "sgd6_bs32": (BASE | dict(epochs=6, batch_size=32, lr=0.03), "four times the steps"),
    "sgd6_bs32_full": (
        BASE | dict(epochs=6, batch_size=32, lr=0.03, validation_split=0.0),
        "four times the steps, all 60,000 training images (no validation split)",
    ),
    "sgd6_bs64_full": (
        BASE | dict(epochs=6, batch_size=64, validation_split=0.0),
        "twice the steps, all 60,000 training images (no validation split)",
    ),
    "sgd8_bs64": (BASE | dict(epochs=8, batch_size=64), "8 epochs, twice the steps per epoch"),
    "adam6_bs64": (
        BASE | dict(epochs=6, batch_size=64, optimizer="adam", lr=0.003, weight_decay=0.0),
        "Adam, as in train_mnist_fast (default betas: TrainConfig has no betas option)",
    ),
}


def run_one(name: str, seed: int, threads: int) -> dict:
    import torch

    import cnnzoo
    from cnnzoo.data import load_dataset

    options, _ = CANDIDATES[name]
    ds = load_dataset("fashion-mnist")
    torch.manual_seed(seed)  # the initial weights, as `cnnzoo train --seed` makes them
    model = cnnzoo.create_model("lenet5_modern")
    t0 = time.perf_counter()
    h = cnnzoo.fit(model, ds, seed=seed, threads=threads, progress="quiet", test_every_epoch=True, **options)
    return {
        "candidate": name, "seed": seed, "options": options,
        "test_accuracy": h.result["test_accuracy"],
        "per_epoch": [round(r["test_accuracy"], 4) for r in h.epochs],
        "flip_accuracy": flip_accuracy(model, ds),
        "train_seconds": round(h.result["train_seconds"], 1), "wall_seconds": round(time.perf_counter() - t0, 1),
        "load": os.getloadavg()[0], "bf16": h.result["config"]["bf16"], "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip


def flip_accuracy(model, ds) -> float:
    """Test accuracy with a test-time flip (Fashion-MNIST may be mirrored): the mean of the softmax of each
    image and of its mirror image. Measured here only; cnnzoo's evaluation and prediction do not flip."""
    import torch

    from cnnzoo.card import card_of
    from cnnzoo.preprocess import preprocess

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(ds.test_images), 1000):
            x = preprocess(ds.test_images[i : i + 1000], card_of(model))
            p = model(x).softmax(1) + model(x.flip(3)).softmax(1)
            correct += int((p.argmax(1) == ds.test_labels[i : i + 1000]).sum())
    return correct / len(ds.test_images)


def load_results(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def report(rows: list[dict]) -> str:
    lines = [
        "| candidate | recipe | seeds | test accuracy mean ± std | min | ≥ 91.0% | epochs to 91% (median) "
        "| with a test-time flip: mean, min, ≥ 91.0% |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, (options, why) in CANDIDATES.items():
        accs = [r["test_accuracy"] for r in rows if r["candidate"] == name]
        if not accs:
            continue
        curves = [r["per_epoch"] for r in rows if r["candidate"] == name]
        reach = [next((i + 1 for i, a in enumerate(c) if a >= TARGET), None) for c in curves]
        reached = sorted(e for e in reach if e is not None)
        epochs = f"{statistics.median(reached):g} ({len(reached)}/{len(reach)})" if reached else "never"
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        flips = [r["flip_accuracy"] for r in rows if r["candidate"] == name and "flip_accuracy" in r]
        flip = (
            f"{100 * statistics.mean(flips):.2f}%, {100 * min(flips):.2f}%, {sum(a >= TARGET for a in flips)}/{len(flips)}"
            if flips
            else "-"
        )
        diff = ", ".join(f"{k} {v}" for k, v in options.items() if BASE.get(k) != v)
        lines.append(
            f"| {name} | {diff}: {why} | {len(accs)} | {100 * statistics.mean(accs):.2f} ± {100 * std:.2f}% | "
            f"{100 * min(accs):.2f}% | {sum(a >= TARGET for a in accs)}/{len(accs)} | {epochs} | {flip} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidates", nargs="+", choices=sorted(CANDIDATES), default=[])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--report", action="store_true", help="print the table of the results so far")
    args = p.parse_args()
    for seed in args.seeds:  # seeds outermost: a screen of every candidate on seed 0 comes first
        for name in args.candidates:
            if any(r["candidate"] == name and r["seed"] == seed for r in load_results(args.results)):
                continue
            row = run_one(name, seed, args.threads)
            with open(args.results, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{name} seed {seed}: {100 * row['test_accuracy']:.2f}% (flip {100 * row['flip_accuracy']:.2f}%) per epoch {row['per_epoch']} "
                  f"({row['train_seconds']} s training, load {row['load']:.1f})", flush=True)  # fmt: skip
    if args.report or not args.candidates:
        print(report(load_results(args.results)))


if __name__ == "__main__":
    main()
