"""Recipe search for ``cnnzoo train lenet5_modern``: candidate recipes × seeds, test accuracy per epoch.

Each run is what ``cnnzoo train lenet5_modern --seed S`` does with the candidate's options (the initial
weights from ``torch.manual_seed(S)``, the candidate's validation split, the machine's defaults for bf16 and
channels_last), plus the test accuracy after every epoch. Accuracy does not depend on the machine's load, so
the runs can share a busy machine; one thread each keeps them out of each other's way. ``ema`` and
``lookahead`` are not TrainConfig options: the script tries them with a global optimizer hook, and adopts
nothing it did not measure.
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

TARGET = 0.91
RESULTS = Path(__file__).with_name("recipe_search.jsonl")
BASE = dict(batch_size=128, lr=0.05, optimizer="sgd", schedule="onecycle", weight_decay=5e-4, crop_padding=0)
# the best of round 1: batch 64 on all 60,000 training images, 6 epochs
FULL = BASE | dict(epochs=6, batch_size=64, validation_split=0.0)
NOFLIP = FULL | dict(hflip=False)
NFLS = NOFLIP | dict(label_smoothing=0.1)
# Adam at a peak of 0.003 for batch 64 (train_mnist_fast: 0.01 at batch 256), no weight decay (Adam's
# weight decay is an L2 term in the gradient, not decay)
ADAM = dict(optimizer="adam", lr=0.003, weight_decay=0.0)

# name -> (TrainConfig options, why it is a candidate)
CANDIDATES: dict[str, tuple[dict, str]] = {
    "sgd12": (BASE | dict(epochs=12), "the default recipe (flips, a 10% validation split)"),
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
        "Adam, as in train_mnist_fast but with torch's betas (0.9, 0.999)",
    ),
    # Round 2: everything from the best of round 1 (batch 64 on all 60,000 images), one change at a time.
    "sgd6_f_lr1": (FULL | dict(lr=0.1), "a higher peak (0.1)"),
    "sgd6_f_lr2": (FULL | dict(lr=0.2), "a much higher peak (0.2)"),
    "sgd6_f_wd0": (FULL | dict(weight_decay=0.0), "no weight decay: 6 epochs may be too short to overfit"),
    "sgd6_f_noflip": (FULL | dict(hflip=False), "no flips: 6 epochs may be too short to need augmentation"),
    "sgd6_f_crop1": (FULL | dict(crop_padding=1), "shifts of ±1 pixel"),
    "sgd6_f_ls": (FULL | dict(label_smoothing=0.1), "label smoothing 0.1"),
    "sgd6_f_lr03": (FULL | dict(lr=0.03), "a lower peak (0.03): 0.1 and 0.2 were worse"),
    "adam6_f_b79": (FULL | ADAM | dict(betas=(0.7, 0.9)), "Adam with train_mnist_fast's betas (0.7, 0.9)"),
    # Round 3: no flips (the best single change of round 2) with the others.
    "sgd6_nf_ls": (NOFLIP | dict(label_smoothing=0.1), "no flips, label smoothing 0.1"),
    "sgd6_nf_wd1e3": (
        NOFLIP | dict(weight_decay=1e-3),
        "no flips, twice the weight decay (less augmentation)",
    ),
    "adam6_nf_b79": (NOFLIP | ADAM | dict(betas=(0.7, 0.9)), "no flips, Adam with betas (0.7, 0.9)"),
    "adam6_nf_b79_lr6": (NOFLIP | ADAM | dict(betas=(0.7, 0.9), lr=0.006), "the same, a higher peak (0.006)"),
    "adam6_nf_b79_bs256": (
        NOFLIP | ADAM | dict(betas=(0.7, 0.9), lr=0.01, batch_size=256),
        "no flips, train_mnist_fast's batch 256, peak 0.01, betas (0.7, 0.9)",
    ),
    "sgd6_nf_ema": (
        NOFLIP | dict(ema=0.999),
        "no flips, evaluated on an average of the weights (EMA 0.999/step)",
    ),
    # Round 4: from no flips + label smoothing 0.1 (the best of round 3), one change at a time.
    "sgd6_nfls_ls2": (NFLS | dict(label_smoothing=0.2), "more label smoothing (0.2)"),
    "sgd6_nfls_warm10": (NFLS | dict(warmup_epochs=0.6), "a shorter warmup: 10% of the run instead of 25%"),
    "sgd6_nfls_wd1e3": (NFLS | dict(weight_decay=1e-3), "twice the weight decay"),
    "sgd6_nfls_lr03": (NFLS | dict(lr=0.03), "a lower peak (0.03)"),
    "sgd6_nfls_lr07": (NFLS | dict(lr=0.07), "a higher peak (0.07)"),
    "sgd6_nfls_bs32": (NFLS | dict(batch_size=32, lr=0.03), "four times the steps of batch 128 (peak 0.03)"),
    "sgd6_nfls_mom95": (NFLS | dict(momentum=0.95), "momentum 0.95"),
    "sgd6_nfls_wd25": (NFLS | dict(weight_decay=2.5e-4), "half the weight decay"),
    "sgd6_nfls_fp32": (NFLS | dict(bf16=False), "fp32 instead of bf16 autocast: does bf16 cost accuracy?"),
    "sgd6_nfls_ls05": (NFLS | dict(label_smoothing=0.05), "less label smoothing (0.05)"),
    "sgd6_nfls_cos": (
        NFLS | dict(schedule="cosine"),
        "no warmup: cosine from the peak, more of the run at a high lr",
    ),
    "sgd6_nfls_w10_m95": (
        NFLS | dict(warmup_epochs=0.6, momentum=0.95),
        "the two best of round 4 together: a 10% warmup and momentum 0.95",
    ),
    "sgd6_nfls_w5": (NFLS | dict(warmup_epochs=0.3), "an even shorter warmup: 5% of the run"),
    "sgd6_nfls_bs32_w10_m95": (
        NFLS | dict(batch_size=32, lr=0.03, warmup_epochs=0.6, momentum=0.95),
        "round 5: the three small gains together (batch 32, a 10% warmup, momentum 0.95)",
    ),
    "sgd7_nfls": (NFLS | dict(epochs=7), "7 epochs: beyond the goal, how far from it is 6?"),
    "sgd8_nfls": (NFLS | dict(epochs=8), "8 epochs: the same question"),
    "sgd6_nfls_la": (NFLS | dict(lookahead=(5, 0.5)), "Lookahead (k 5, alpha 0.5) around Nesterov SGD"),
}


def run_one(name: str, seed: int, threads: int) -> dict:
    import torch

    import cnnzoo
    from cnnzoo.config import TrainConfig
    from cnnzoo.data import load_dataset

    options, _ = CANDIDATES[name]
    ds = load_dataset("fashion-mnist")
    torch.manual_seed(seed)  # the initial weights, as `cnnzoo train --seed` makes them
    model = cnnzoo.create_model("lenet5_modern")
    t0 = time.perf_counter()
    options, ema = dict(options), None
    hooks = []
    if "ema" in options and not hasattr(TrainConfig, "ema"):  # a trial before TrainConfig has it
        ema, hook = weight_average(model, options.pop("ema"))
        hooks.append(hook)
    if "lookahead" in options and not hasattr(TrainConfig, "lookahead"):  # the same
        hooks.append(lookahead(model, *options.pop("lookahead")))
    h = cnnzoo.fit(model, ds, seed=seed, threads=threads, progress="quiet", test_every_epoch=True, **options)
    for hook in hooks:
        hook.remove()
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())
        h.result["test_accuracy"] = cnnzoo.evaluate(model, ds)["accuracy"]
    return {
        "candidate": name, "seed": seed, "options": CANDIDATES[name][0],
        "test_accuracy": h.result["test_accuracy"],
        "per_epoch": [round(r["test_accuracy"], 4) for r in h.epochs],
        "train_per_epoch": [round(r["accuracy"], 4) for r in h.epochs],  # under- or overfitting?
        "flip_accuracy": flip_accuracy(model, ds),
        "train_seconds": round(h.result["train_seconds"], 1), "wall_seconds": round(time.perf_counter() - t0, 1),
        "load": os.getloadavg()[0], "bf16": h.result["config"]["bf16"], "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip


def weight_average(model, decay: float):
    """An exponential moving average of ``model``'s weights, updated after every optimizer step (any
    optimizer: a global hook, for a trial of the idea before fit has it)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    return ema, register_optimizer_step_post_hook(lambda *_: ema.update_parameters(model))


def lookahead(model, k: int, alpha: float):
    """Lookahead (Zhang et al. 2019) around any optimizer: every ``k`` steps the slow weights move ``alpha``
    of the way to the fast ones, and the fast weights restart from there. A global hook, for a trial."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    params = list(model.parameters())
    slow = [p.detach().clone() for p in params]
    steps = [0]

    @torch.no_grad()
    def step(*_):
        steps[0] += 1
        if steps[0] % k == 0:
            for p, s in zip(params, slow, strict=True):
                s.add_(p - s, alpha=alpha)
                p.copy_(s)

    return register_optimizer_step_post_hook(step)


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
