"""Training throughput: cnnzoo's in-memory engine vs the common tutorial pipeline, LeNet-5 on Fashion-MNIST.

Tutorial pipeline (what most PyTorch tutorials do): ``torchvision.datasets.FashionMNIST`` (PIL image per
sample) + ``transforms.ToTensor()`` + ``DataLoader(batch_size=256, shuffle=True, num_workers=2)`` + a plain
loop. Downloads are impossible here, so the real torchvision class reads the same local files, decompressed
into its ``FashionMNIST/raw`` layout. Ours: ``cnnzoo.fit`` (uint8 tensor in memory, batched preprocessing).
Same model (lenet5_modern), batch 256, SGD, one epoch of the 60,000 training images each, same threads.

    .venv/bin/python benchmarks/train_throughput.py [--threads 2] [--write docs/benchmarks.md]
    .venv/bin/python benchmarks/train_throughput.py --contention [--repeat 2]
    .venv/bin/python benchmarks/train_throughput.py --user-data

``--user-data`` times fit on what a user already has, each beside its plain alternative in one run: fit on
the tutorial's own DataLoader against the tutorial loop on that same DataLoader, and fit on Keras-shaped
uint8 numpy arrays (N×28×28×1) against the tutorial pipeline.

``--contention`` runs ``cnnzoo train lenet5_modern --epochs 1 --limit 20000`` (a child process each) on a
quiet machine and with one and two CPU-bound competitors (Python busy loops started here), each setting in
turn within one repetition so a change in background load hits them alike, and prints each throughput as a
share of the same setting's quiet figure. Settings: before issue #20 (torch's default threads), passive OpenMP
waiting (tried and dropped), the free-core budget (the default, cnnzoo.threads) and both.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import cnnzoo
from cnnzoo.data import load_dataset

SRC = Path("/usr/share/datasets/fashion-mnist")


def tutorial_loader(root: Path, images: int | None = None):
    """The tutorial's DataLoader: torchvision's FashionMNIST + ToTensor, batch 256, shuffled, 2 workers."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        if not (raw / name).exists():
            with gzip.open(SRC / f"{name}.gz") as f, open(raw / name, "wb") as g:
                shutil.copyfileobj(f, g)
    train = datasets.FashionMNIST(root, train=True, download=False, transform=transforms.ToTensor())
    if images is not None:
        train = torch.utils.data.Subset(train, range(images))
    return DataLoader(train, batch_size=256, shuffle=True, num_workers=2)


def tutorial(
    root: Path, epochs: int, model_arg: str = "lenet5_modern", images: int | None = None, loader=None
) -> float:
    loader = loader or tutorial_loader(root, images)
    torch.manual_seed(0)
    model = cnnzoo.create_model(model_arg)  # any model argument: a zoo name, a layer string, ...
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            n += len(y)
    return n / (time.perf_counter() - t0)


def ours(epochs: int, model_arg: str = "lenet5_modern", images: int | None = None) -> float:
    data = load_dataset("fashion-mnist")
    torch.manual_seed(0)
    model = cnnzoo.create_model(model_arg)
    t0 = time.perf_counter()
    h = cnnzoo.fit(
        model,
        data,
        epochs=epochs,
        batch_size=256,
        lr=0.05,
        validation_split=0.0,
        crop_padding=0,
        hflip=True,
        progress="quiet",
        limit=images,
    )
    wall = time.perf_counter() - t0
    # Like the tutorial's figure (its training loop, loader included), ours is the training loop. fit()'s
    # wall clock also includes setup and the 10,000-image test evaluation: printed for reference.
    print(
        f"  (ours, fit() wall clock incl. setup and test evaluation: {(images or len(data.train_images)) * epochs / wall:,.0f} img/s)"
    )
    return h.result["train_images_per_second"]


def fit_on_loader(loader, epochs: int) -> float:
    """fit on the user's DataLoader as built, with the tutorial's optimizer and loss: its training loop's img/s."""
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5_modern")
    h = cnnzoo.fit(
        model,
        loader,
        epochs=epochs,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
        loss=torch.nn.CrossEntropyLoss(),
        progress=False,
    )
    return h.result["train_images_per_second"]


def fit_on_arrays(epochs: int) -> float:
    """fit on Keras-shaped uint8 numpy arrays (N, 28, 28, 1) and their labels, as a Keras user has them."""
    data = load_dataset("fashion-mnist")
    x = data.train_images.numpy().transpose(0, 2, 3, 1).copy()
    y = data.train_labels.numpy().astype("uint8")
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5_modern")
    h = cnnzoo.fit(model, x, y, epochs=epochs, batch_size=256, lr=0.05, progress=False)
    return h.result["train_images_per_second"]


def user_data(epochs: int) -> None:
    """Each side as its user gets it: the tutorial loop with torch's threads, fit with its defaults (the
    thread budget of cnnzoo.threads: the cores other processes leave free)."""
    with tempfile.TemporaryDirectory() as tmp:
        loader = tutorial_loader(Path(tmp))
        plain = tutorial(Path(tmp), epochs, loader=loader)
        ours_loader = fit_on_loader(loader, epochs)
        arrays = fit_on_arrays(epochs)
    print(
        f"\n{_machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}, {epochs} epoch(s), one run\n"
    )
    print("| case | plain img/s | cnnzoo fit img/s | ratio |\n|---|---|---|---|")
    print(
        f"| the tutorial's DataLoader: its plain loop vs `fit(model, loader)` | {plain:,.0f} | {ours_loader:,.0f} "
        f"| **{ours_loader / plain:.2f}×** |"
    )
    print(
        f"| uint8 N×28×28×1 numpy arrays: the tutorial pipeline vs `fit(model, x, y)` | {plain:,.0f} | "
        f"{arrays:,.0f} | **{arrays / plain:.2f}×** |"
    )


# name -> (OpenMP waiting passive, threads adapted to the free cores)
SETTINGS = {
    "before #20: torch's threads, OpenMP's default waiting": (False, False),
    "passive waiting only (tried, dropped)": (True, False),
    "free-core budget (the default)": (False, True),
    "budget + passive waiting": (True, True),
}
_TRAIN = "import sys; from cnnzoo.cli import main; sys.exit(main(sys.argv[1:]))"


def train_once(passive: bool, adapt: bool, out: Path, limit: int) -> float:
    """img/s of one `cnnzoo train lenet5_modern` epoch in a child process (result.json's training loop)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    argv = ["train", "lenet5_modern", "--epochs", "1", "--limit", str(limit), "--quiet", "--out", str(out)]
    if not adapt:
        argv += ["--threads", str(os.cpu_count())]  # what torch takes by default
    subprocess.run([sys.executable, "-c", _TRAIN, *argv], env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "result.json").read_text())["train_images_per_second"]


def contention(repeat: int, limit: int) -> None:
    figures: dict[tuple[str, int], list[float]] = {}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeat):
            for competitors in (0, 1, 2):
                spinners = [
                    subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(competitors)
                ]
                try:
                    time.sleep(0.5)  # the competitors are running before training starts
                    for name, (passive, adapt) in SETTINGS.items():
                        ips = train_once(
                            passive, adapt, Path(tmp) / f"r{rep}-{competitors}-{len(figures)}", limit
                        )
                        figures.setdefault((name, competitors), []).append(ips)
                        print(
                            f"  rep {rep + 1}, {competitors} competitor(s), {name}: {ips:,.0f} img/s",
                            flush=True,
                        )
                finally:
                    for s in spinners:
                        s.kill()
                        s.wait()
                loads.append(os.getloadavg()[0])
    print(
        f"\n{_machine()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}, `cnnzoo train "
        f"lenet5_modern --epochs 1 --limit {limit}`, median (best) of {repeat} interleaved runs; load average "
        f"{min(loads):.1f}-{max(loads):.1f} (competitors included)\n"
    )
    print("| setting | quiet img/s | 1 competitor img/s | share | 2 competitors img/s | share |")
    print("|---|---|---|---|---|---|")
    for name in SETTINGS:
        med = [statistics.median(figures[name, c]) for c in (0, 1, 2)]
        best = [max(figures[name, c]) for c in (0, 1, 2)]
        print(
            f"| {name} | {med[0]:,.0f} ({best[0]:,.0f}) | {med[1]:,.0f} ({best[1]:,.0f}) | "
            f"**{med[1] / med[0]:.0%}** | {med[2]:,.0f} ({best[2]:,.0f}) | **{med[2] / med[0]:.0%}** |"
        )


def _machine() -> str:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    return f"{cpu} ({os.cpu_count()} cores)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--model", default="lenet5_modern", help="any model argument, e.g. a layer string")
    p.add_argument(
        "--images", type=int, default=None, help="train on the first N images (default: all 60,000)"
    )
    p.add_argument("--write", help="update the '## Training throughput' section of this markdown file")
    p.add_argument("--contention", action="store_true", help="quiet vs one and two busy competitors")
    p.add_argument("--repeat", type=int, default=2, help="--contention: interleaved repetitions")
    p.add_argument("--limit", type=int, default=20_000, help="--contention: training images (--limit)")
    p.add_argument("--user-data", action="store_true", help="fit on a DataLoader and on numpy arrays")
    args = p.parse_args()
    if args.contention:
        return contention(args.repeat, args.limit)
    torch.set_num_threads(args.threads)
    if args.user_data:
        return user_data(args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        tut = tutorial(Path(tmp), args.epochs, args.model, args.images)
    print(
        f"tutorial pipeline (torchvision FashionMNIST + ToTensor + DataLoader(num_workers=2)): {tut:,.0f} img/s"
    )
    our = ours(args.epochs, args.model, args.images)
    print(f"cnnzoo engine (in-memory uint8, batched preprocessing): {our:,.0f} img/s")
    print(f"ratio: {our / tut:.1f}x")
    if args.write:
        _write(Path(args.write), tut, our, args.threads)


def _write(path: Path, tut: float, our: float, threads: int) -> None:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    try:
        bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        bf16 = False
    defaults = "bf16 + channels_last" if bf16 else "fp32 + channels_last: no bf16 units on this CPU"
    section = (
        "## Training throughput\n\n"
        "`benchmarks/train_throughput.py`: lenet5_modern on Fashion-MNIST, batch 256, SGD, one epoch of 60,000 "
        f"images, {threads} torch threads, {cpu} ({os.cpu_count()} cores), torch {torch.__version__}, one run.\n\n"
        "| pipeline | img/s |\n|---|---|\n"
        f"| tutorial: torchvision `FashionMNIST` + `ToTensor` + `DataLoader(num_workers=2)` + plain loop | {tut:,.0f} |\n"
        f"| cnnzoo `fit` (uint8 tensor in memory, batched preprocessing, {defaults}) | {our:,.0f} |\n"
        f"| **ratio** | **{our / tut:.1f}×** |\n\n"
        "The tutorial pipeline spends its time building one PIL image and one tensor per sample and collating "
        "them in worker processes that compete with the training loop for the same cores.\n"
    )
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find("## Training throughput")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    main()
