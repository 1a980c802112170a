"""CPU speedrun: time to 91% test accuracy on Fashion-MNIST (99% on MNIST when MNIST is present), lenet5_modern,
cnnzoo's engine vs the tutorial pipeline, mean ± std over seeds, in one process.

- cnnzoo: ``cnnzoo.fit`` with the model's recipe (``cnnzoo.train.recipes``; ``--recipe NAME`` for a named
  one), as ``cnnzoo train`` runs it (the recipe's optimizer, validation split, flips and test-time flip, the
  machine's defaults for bf16 and channels_last), the test set after every epoch.
- tutorial: ``torchvision.datasets`` + ``RandomHorizontalFlip`` (where the recipe flips) + ``ToTensor`` +
  ``Normalize`` + ``DataLoader(shuffle=True, num_workers=2)`` + a plain fp32 loop, with the same model,
  training images, optimizer, schedule, label smoothing, batch, epochs and test-time flip, so only the
  pipeline differs.

Time to target: the training loops' seconds up to the end of the first epoch whose test accuracy reaches the
target (the per-epoch evaluations are not counted, for either). Seeds alternate between the two pipelines so
background load hits both alike.

    .venv/bin/python benchmarks/speedrun.py [--seeds 0 1 2 3 4] [--threads 2] [--pipelines cnnzoo tutorial]
        [--recipe default|fast]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

import cnnzoo
from cnnzoo.config import config_from
from cnnzoo.data import dataset_facts, load_dataset
from cnnzoo.train.data import split
from cnnzoo.train.optim import make_optimizer, make_scheduler
from cnnzoo.train.recipes import RECIPE_NAMES, recipe_for
from cnnzoo.tta import FlipAveraged

TARGETS = {"fashion-mnist": 0.91, "mnist": 0.99}
SRC = Path("/usr/share/datasets")
MODEL = "lenet5_modern"


def ours(dataset: str, seed: int, target: float, recipe: str) -> tuple[float | None, int | None]:
    ds = load_dataset(dataset)
    torch.manual_seed(seed)
    model = cnnzoo.create_model(MODEL)
    h = cnnzoo.fit(model, ds, seed=seed, progress="quiet", test_every_epoch=True, **recipe_for(MODEL, recipe))
    return _first(h.epochs, target)


def _first(records: list[dict], target: float) -> tuple[float | None, int | None]:
    seconds = 0.0
    for r in records:
        seconds += r["seconds"]
        if r["test_accuracy"] >= target:
            return seconds, r["epoch"]
    print(f"  (best test accuracy {max(r['test_accuracy'] for r in records):.2%} in {len(records)} epochs)")
    return None, None


def tutorial(
    dataset: str, seed: int, target: float, root: Path, recipe: str
) -> tuple[float | None, int | None]:
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    cls = {"fashion-mnist": datasets.FashionMNIST, "mnist": datasets.MNIST}[dataset]
    raw = root / cls.__name__ / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        if not (raw / name).exists():
            with gzip.open(SRC / dataset / f"{name}.gz") as f, open(raw / name, "wb") as g:
                shutil.copyfileobj(f, g)
    ds = load_dataset(dataset)
    norm = [transforms.ToTensor(), transforms.Normalize(ds.mean, ds.std)]
    cfg = config_from(recipe_for(MODEL, recipe))  # the recipe's options, TrainConfig's defaults for the rest
    hflip = cfg.hflip if cfg.hflip is not None else dataset_facts(dataset).mirroring  # as fit decides
    flip = [transforms.RandomHorizontalFlip()] if hflip else []
    train = cls(root, train=True, download=False, transform=transforms.Compose(flip + norm))
    test = cls(root, train=False, download=False, transform=transforms.Compose(norm))
    index = torch.arange(len(train))
    kept = split(index, index, cfg.validation_split, seed)[0]  # the very images fit trains on
    train = Subset(train, kept.tolist())
    loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True, num_workers=2, drop_last=True)
    torch.manual_seed(seed)
    model = cnnzoo.create_model(MODEL)
    opt = make_optimizer(model, cfg, bf16=True)  # Muon's products in bf16, as torch.optim.Muon has them
    sched = make_scheduler(opt, cfg, len(loader))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    records = []
    for epoch in range(cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        for x, y in loader:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            sched.step()
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():  # with the recipe's test-time flip, as cnnzoo evaluates
            views = FlipAveraged(model) if cfg.test_flip and hflip else model
            correct = sum(int((views(x).argmax(1) == y).sum()) for x, y in DataLoader(test, batch_size=1000))
        records.append({"epoch": epoch + 1, "seconds": seconds, "test_accuracy": correct / len(test)})
    return _first(records, target)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--recipe", choices=RECIPE_NAMES, default="default")
    p.add_argument("--pipelines", nargs="+", choices=["cnnzoo", "tutorial"], default=["cnnzoo", "tutorial"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    print(
        f"{cpu}, {os.cpu_count()} cores, {args.threads} threads, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.1f}, recipe {args.recipe}"
    )
    for dataset, target in TARGETS.items():
        if not (SRC / dataset).is_dir():
            print(f"{dataset}: not on this machine ({SRC / dataset}): skipped")
            continue
        times: dict[str, list] = {k: [] for k in args.pipelines}
        with tempfile.TemporaryDirectory() as tmp:
            for seed in args.seeds:
                for name in args.pipelines:
                    t, epoch = (
                        ours(dataset, seed, target, args.recipe)
                        if name == "cnnzoo"
                        else tutorial(dataset, seed, target, Path(tmp), args.recipe)
                    )
                    times[name].append(t)
                    shown = f"{t:.1f} s (epoch {epoch})" if t is not None else "not reached"
                    print(
                        f"  {dataset} seed {seed} {name}: {shown}, load {os.getloadavg()[0]:.1f}", flush=True
                    )
        print(
            f"\n| {dataset}, target {target:.0%} | seeds reaching it | time to target mean ± std |\n|---|---|---|"
        )
        for name, ts in times.items():
            ok = [t for t in ts if t is not None]
            spread = (
                f"{statistics.mean(ok):.1f} ± {statistics.stdev(ok) if len(ok) > 1 else 0:.1f} s"
                if ok
                else "-"
            )
            print(f"| {name} | {len(ok)}/{len(ts)} | {spread} |")


if __name__ == "__main__":
    main()
