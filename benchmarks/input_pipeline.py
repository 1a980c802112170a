"""The streaming input pipeline (cnnzoo.data.stream) vs torchvision's ImageFolder + transforms + DataLoader,
and the peak memory of a streamed ResNet-18 run against the folder's size, in one run.

    .venv/bin/python benchmarks/input_pipeline.py [--images 4000] [--workers 2] [--repeat 2] [--no-train]

1. Generates a folder of ``--images`` JPEGs (10 classes, 160-400 px, photo-like noise; in /tmp) and one of
   twice as many (the first folder's files hard-linked, plus as many new ones).
2. Throughput on the first folder, same batch (128), same workers, same augmentation (random-resized crop to
   128×128 at 25-100% of the area, mirror) and both ending in a normalised float batch: ours (uint8 batches
   from the workers, normalised in the main process as the trainer does) and torchvision's (PIL decode,
   ``RandomResizedCrop``, ``ToTensor``, ``Normalize`` in the workers). The two alternate (A B A B); the best
   pass of each is reported (other processes only ever add time) with the ratio. The main process keeps
   one torch thread.
3. ``cnnzoo train resnet18 --dataset imagefolder:PATH --stream --input 3x128x128 --epochs 1`` on both folders:
   the peak resident memory of the training process (VmHWM) and the peak proportional memory (PSS) of the
   process and its decoding workers together, sampled every 0.1 s; the change from N to 2N images.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path("/tmp/cnnzoo-bench-pipeline")
SIZE, BATCH = 128, 128


def generate(root: Path, n: int, start: int = 0, classes: int = 10) -> None:
    from PIL import Image

    rng = np.random.default_rng(start)
    for k in range(start, start + n):
        d = root / f"class{k % classes:02d}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"img{k:06d}.jpg"
        if path.exists():
            continue
        h, w = int(rng.integers(160, 401)), int(rng.integers(160, 401))
        small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)  # smooth blobs + grain
        img = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
        arr = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, (h, w, 3), dtype=np.int16)
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)


def folders(n: int) -> tuple[Path, Path]:
    one, two = ROOT / f"n{n}", ROOT / f"n{2 * n}"
    generate(two, 2 * n)
    for src in sorted(two.rglob("*.jpg"))[: 2 * n]:
        k = int(src.stem[3:])
        if k < n:
            dst = one / src.parent.name / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                os.link(src, dst)
    return one, two


def ours(root: Path, workers: int):
    from cnnzoo.card import ModelCard
    from cnnzoo.data.stream import StreamTrain, load_for_training
    from cnnzoo.train import prepare_for

    s = load_for_training(f"imagefolder:{root}", stream=True)
    source = StreamTrain(
        s, s.listing.train + s.listing.test, (SIZE, SIZE), BATCH, 0, 1, 0, True, workers, torch.device("cpu")
    )
    prepare = prepare_for(ModelCard(model="", input_size=(3, SIZE, SIZE), mean=s.mean, std=s.std))
    epoch = [0]

    def one_pass() -> int:
        n = 0
        for images, _ in source.epoch(epoch[0]):
            n += len(prepare(images))
        epoch[0] += 1
        return n

    return one_pass


def baseline(root: Path, workers: int):
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    t = transforms.Compose(
        [
            transforms.RandomResizedCrop(SIZE, scale=(0.25, 1.0)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        ]
    )
    loader = DataLoader(
        datasets.ImageFolder(str(root), transform=t),
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )

    def one_pass() -> int:
        return sum(len(x) for x, _ in loader)

    return one_pass


def throughput(root: Path, workers: int, repeat: int) -> None:
    fns = {"cnnzoo stream": ours(root, workers), "torchvision ImageFolder": baseline(root, workers)}
    best = {k: 0.0 for k in fns}
    for f in fns.values():
        f()  # warm-up: workers started, files in the page cache for both alike
    for _ in range(repeat):
        for name, f in fns.items():
            t0 = time.perf_counter()
            n = f()
            best[name] = max(best[name], n / (time.perf_counter() - t0))
    for name, ips in best.items():
        print(f"  {name:<26} {ips:8,.0f} images/s")
    ratio = best["cnnzoo stream"] / best["torchvision ImageFolder"]
    print(f"  ratio (ours / torchvision): {ratio:.2f}x  ({workers} workers, batch {BATCH}, {SIZE}x{SIZE})")


def _tree(pid: int) -> list[int]:
    out = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for c in children:
        out += _tree(int(c))
    return out


def _kb(pid: int, path: str, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def train_memory(root: Path, workers: int, out: Path) -> tuple[float, float, float]:
    """(seconds, peak VmHWM of the training process MB, peak PSS of it and its workers MB)."""
    fixed = (
        "-m cnnzoo train resnet18 --stream --input 3x128x128 --epochs 1 "
        "--batch-size 64 --eval-batch-size 64 --quiet"
    ).split()
    data = f"imagefolder:{root}"
    cmd = [sys.executable, *fixed, "--dataset", data, "--workers", str(workers), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    hwm = pss = 0
    while proc.poll() is None:
        hwm = max(hwm, _kb(proc.pid, "status", "VmHWM:"))
        pss = max(pss, sum(_kb(p, "smaps_rollup", "Pss:") for p in _tree(proc.pid)))
        time.sleep(0.1)
    if proc.returncode:
        raise SystemExit(f"cnnzoo train failed:\n{proc.stderr.read()[-2000:]}")
    return time.perf_counter() - t0, hwm / 1024, pss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-train", action="store_true", help="throughput only")
    args = ap.parse_args()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    print(f"{cpu}, {os.cpu_count()} cores; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}")
    t0 = time.perf_counter()
    one, two = folders(args.images)
    print(
        f"folders: {one} ({args.images:,} JPEGs), {two} ({2 * args.images:,}) in {time.perf_counter() - t0:.0f} s"
    )
    print("throughput, one pass over the folder:")
    # one thread for our batch normalisation in this process: the cores belong to the workers, and two
    # OpenMP threads spin-wait on busy cores (docs/training.md); torchvision's main process only unpickles
    torch.set_num_threads(1)
    throughput(one, args.workers, args.repeat)
    if args.no_train:
        return
    print("cnnzoo train resnet18 --stream --input 3x128x128 --epochs 1 (batch 64):")
    peaks = {}
    for root in (one, two):
        n = sum(1 for _ in root.rglob("*.jpg"))
        secs, hwm, pss = train_memory(root, args.workers, ROOT / f"run-{root.name}")
        peaks[n] = (hwm, pss)
        print(
            f"  {n:6,} images: {secs:6.0f} s, peak RSS (training process) {hwm:7,.0f} MB, "
            f"peak PSS (with {args.workers} workers) {pss:7,.0f} MB"
        )
    (a_hwm, a_pss), (b_hwm, b_pss) = peaks.values()
    print(
        f"  doubling the folder: RSS {100 * (b_hwm / a_hwm - 1):+.1f}%, PSS {100 * (b_pss / a_pss - 1):+.1f}%"
    )


if __name__ == "__main__":
    main()
