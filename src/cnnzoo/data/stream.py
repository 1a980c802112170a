"""Image folders too large for memory: decoded batch by batch in DataLoader worker processes.

``load_for_training(name, stream=None)`` returns the in-memory :class:`ImageDataset` for small data and a
:class:`FolderStream` (the listing, classes, channels, mean/std from a sample) when the folder, decoded,
would take more than ``MEMORY_SHARE`` of the available memory, or when asked (``stream=True``).

A stream's batches come from :class:`StreamTrain` / :class:`StreamEval`:

- **Workers** (``torch.utils.data.DataLoader``) read and decode each file (:mod:`cnnzoo.data.decode`:
  the guarded header check, then torchvision.io's libjpeg-turbo/libpng) and crop it to the model's input:
  a random-resized crop and mirror for training, a centre crop for evaluation. Batches stay uint8 (4× less
  to move between processes than float); the trainer normalises them on the device. On CUDA batches are
  pinned and copied without blocking; each worker keeps ``PREFETCH`` batches ready.
- **Ranks** read disjoint shares: ``torch.utils.data.DistributedSampler`` shuffles the training indices with
  (seed, epoch) and gives rank r every world_size-th one (the tail that does not divide is dropped, so every
  rank takes the same number of steps); evaluation gives rank r the indices r, r + world_size, ...
- **Resume** is exact at epoch boundaries: an epoch's order is a function of (seed, epoch) and an image's
  crop of (seed, epoch, index), whatever the worker count. Runs checkpoint only between epochs, so a run
  stopped mid-epoch repeats that epoch from its start.
- **Bad files** (corrupt, truncated, empty, a refused format): a worker returns the error instead of the
  image; the batch is one image shorter and the main process prints one warning line naming the file (once
  per file) and counts it, or with ``strict`` raises a one-line :class:`DataError` naming it. A worker that
  dies (a crash, the OOM killer) stops the run with a one-line error, never silently.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

from ..atomic import shown_path
from ..errors import DataError
from .decode import crop_rng, decode_file, eval_crop, header, train_crop
from .folders import FolderListing, list_folder
from .imagefolder import GREY_MODES, parse_imagefolder_name
from .types import channel_stats

__all__ = [
    "FolderStream",
    "StreamTrain",
    "StreamEval",
    "SkipLog",
    "open_stream",
    "load_for_training",
    "decoded_bytes",
    "available_memory",
    "default_workers",
    "train_sampler",
    "MEMORY_SHARE",
]

MEMORY_SHARE = 0.25  # stream when the decoded folder would take more than this share of the available memory
STATS_SAMPLE = 256  # training images decoded for mean/std (and channels, sizes): a second or two
PREFETCH = 4  # batches each worker keeps ready
IN_MEMORY_LAYOUTS = ("train/ + test/", "class folders, 90/10")  # what data/imagefolder.py reads too


@dataclass
class SkipLog:
    """The files this process could not read: each is counted once (for result.json). The first ``SHOWN``
    get a warning line each; the rest, however many (a folder replaced mid-epoch makes tens of thousands),
    one summary line, with every file and its reason in ``log`` (the run directory's ``skipped.log``)."""

    strict: bool = False
    paths: set[str] = field(default_factory=set)
    log: Path | None = None
    SHOWN = 3

    def note(self, failures: list[tuple[str, str]]) -> None:
        for path, message in failures:
            if self.strict:
                raise DataError(f"{message} (--strict: unreadable files are errors)".replace("\n", " "))
            if path in self.paths:
                continue
            self.paths.add(path)
            line = f"skipped {message}".replace("\n", " ")
            self._append(line)
            if len(self.paths) <= self.SHOWN:
                print(f"warning: {shown_path(line)}", file=sys.stderr, flush=True)
            elif len(self.paths) == self.SHOWN + 1:
                where = f"; all are listed in {shown_path(self.log)}" if self.log else ""
                print(
                    f"warning: more unreadable files are being skipped: counted, not shown{where}",
                    file=sys.stderr,
                    flush=True,
                )

    def _append(self, line: str) -> None:
        if self.log is None:
            return
        try:
            with open(self.log, "a", encoding="utf-8", errors="backslashreplace") as f:
                f.write(line + "\n")
        except OSError:
            self.log = None  # the count still goes to result.json


@dataclass
class FolderStream:
    """An image folder read batch by batch: what ``fit`` streams instead of an ImageDataset."""

    name: str
    listing: FolderListing
    channels: int
    size: tuple[int, int] | None  # ``?size=HxW``; None: the model's input size
    mean: tuple[float, ...]
    std: tuple[float, ...]
    reason: str  # why it streams, for the notice
    skips: SkipLog = field(default_factory=SkipLog)

    @property
    def classes(self) -> list[str]:
        return self.listing.classes

    @property
    def num_train(self) -> int:
        return len(self.listing.train)


class _Images(Dataset):
    """Files decoded and cropped one by one (in a worker). Paths live in one numpy byte array, not a
    list of Python strings: workers forked from the main process then share it instead of copying it
    page by page as reference counts change (github.com/pytorch/pytorch/issues/13246)."""

    def __init__(self, items, size, channels, seed=0, hflip=False, train=False):
        self.paths = np.array([os.fsencode(p) for p, _ in items], dtype=np.bytes_)  # any name, UTF-8 or not
        self.labels = np.array([c for _, c in items], dtype=np.int64)
        self.size, self.channels, self.seed, self.hflip, self.train = (
            tuple(size),
            channels,
            seed,
            hflip,
            train,
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key):
        epoch, i = key if self.train else (0, key)
        path = os.fsdecode(self.paths[i])
        try:
            img = decode_file(path, self.channels)
            if self.train:
                img = train_crop(img, self.size, crop_rng(self.seed, epoch, i), self.hflip)
            else:
                img = eval_crop(img, self.size)
        except DataError as e:
            return None, int(self.labels[i]), (path, str(e))
        return img, int(self.labels[i]), None


def _collate(samples):
    """(uint8 images, labels, failures): the readable images of a batch, and (path, message) of the others."""
    good = [(img, label) for img, label, bad in samples if bad is None]
    failures = [bad for _, _, bad in samples if bad is not None]
    if not good:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), failures
    images, labels = default_collate(good)  # in a worker: straight into shared memory
    return images, labels, failures


class _Tagged(torch.utils.data.Sampler):
    """The sampler's indices tagged with its epoch: persistent workers learn the epoch from the key."""

    def __init__(self, sampler: DistributedSampler):
        self.sampler = sampler

    def __iter__(self):
        epoch = self.sampler.epoch
        return ((epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def train_sampler(n: int, rank: int, world_size: int, seed: int) -> DistributedSampler:
    """The training sampler of rank ``rank``: ``set_epoch(e)`` then iterate for its indices of epoch e."""
    return DistributedSampler(range(n), world_size, rank, shuffle=True, seed=seed, drop_last=True)


def _loader(dataset, sampler, batch: int, workers: int, device: torch.device, train: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        collate_fn=_collate,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=train,
        persistent_workers=train and workers > 0,
        prefetch_factor=PREFETCH if workers else None,
    )


def _batches(loader: DataLoader, device: torch.device, skips: SkipLog):
    it = iter(loader)
    while True:
        try:
            images, labels, failures = next(it)
        except StopIteration:
            return
        except RuntimeError as e:  # a worker killed by a signal or gone: say so, in one line
            if "DataLoader worker" not in str(e):
                raise
            first = str(e).strip().splitlines()[0]
            raise DataError(
                f"a data-loading worker process died: {first} (out of memory? try fewer --workers)"
            ) from e
        skips.note(failures)
        if not len(labels):
            raise DataError(f"no image of a batch could be read (first: {failures[0][1]})")
        non_blocking = device.type == "cuda"
        yield images.to(device, non_blocking=non_blocking), labels.to(device, non_blocking=non_blocking)


class StreamTrain:
    """The training batches of one rank: ``epoch(e)`` yields (uint8 images, labels) on ``device``."""

    def __init__(
        self,
        stream: FolderStream,
        items,
        size,
        batch: int,
        rank: int,
        world_size: int,
        seed: int,
        hflip: bool,
        workers: int,
        device: torch.device,
    ) -> None:
        self.dataset = _Images(items, size, stream.channels, seed, hflip, train=True)
        self.sampler = train_sampler(len(items), rank, world_size, seed)
        self.loader = _loader(self.dataset, _Tagged(self.sampler), batch, workers, device, True)
        self.steps, self.device, self.skips = len(self.loader), device, stream.skips

    def epoch(self, epoch: int):
        self.sampler.set_epoch(epoch)
        return _batches(self.loader, self.device, self.skips)

    def augment_generator(self, epoch: int) -> None:
        return None  # the workers crop and mirror


class StreamEval:
    """An evaluation set: ``batches(batch_size)`` yields this rank's disjoint share, centre-cropped."""

    def __init__(
        self,
        stream: FolderStream,
        items,
        size,
        rank: int,
        world_size: int,
        workers: int,
        device: torch.device,
    ) -> None:
        self.dataset = _Images(items, size, stream.channels)
        self.rank, self.world_size, self.workers, self.device, self.skips = (
            rank,
            world_size,
            workers,
            device,
            stream.skips,
        )

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, batch_size: int):
        share = range(self.rank, len(self.dataset), self.world_size)
        loader = _loader(
            self.dataset,
            share,
            batch_size,
            min(self.workers, len(share) // batch_size + 1),
            self.device,
            False,
        )
        return _batches(loader, self.device, self.skips)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` readable images and labels (uint8, on the CPU): what snapshots show."""
        images, labels = [], []
        for i in range(min(n, len(self.dataset))):
            img, label, bad = self.dataset[i]
            if bad is None:
                images.append(img)
                labels.append(label)
        return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def available_memory() -> int:
    """Bytes of memory available to new allocations (Linux: MemAvailable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 40  # unknown: assume plenty (the in-memory path)


def decoded_bytes(n: int, channels: int, size: tuple[int, int]) -> int:
    return n * channels * size[0] * size[1]


def default_workers() -> int:
    """Decoding workers per process: this process's share of the cores, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(8, per_process))


def _probe(listing: FolderListing):
    """(channels, median size (H, W), mean, std) from a seeded sample of the training files."""
    rng = np.random.default_rng(0)
    pick = sorted(rng.choice(len(listing.train), min(STATS_SAMPLE, len(listing.train)), replace=False))
    headers = {}
    for i in pick:
        try:
            headers[listing.train[i][0]] = header(listing.train[i][0])
        except DataError:
            continue  # reported when training reaches it
    channels = 1 if all(mode in GREY_MODES for mode, _ in headers.values()) else 3
    crops = []
    for path in headers:
        try:
            crops.append(eval_crop(decode_file(path, channels), (64, 64)))
        except DataError:
            continue
    if not crops:
        raise DataError(f"imagefolder: none of {len(pick)} sampled images of {listing.root} could be read")
    hs, ws = zip(*(size for _, size in headers.values()), strict=True)
    mean, std = channel_stats(torch.stack(crops))
    return channels, (int(np.median(hs)), int(np.median(ws))), mean, std


def open_stream(name: str, stream: bool | None = None, strict: bool = False) -> FolderStream | None:
    """The :class:`FolderStream` of ``imagefolder:PATH[?size=...]``, or None when ``stream`` is None and the
    decoded folder fits comfortably in memory (the in-memory loader is then the faster choice)."""
    cfg = parse_imagefolder_name(name.split(":", 1)[1])
    listing = list_folder(cfg.root)
    channels, median, mean, std = _probe(listing)
    need = decoded_bytes(len(listing.train) + len(listing.test), channels, cfg.size or median)
    have = available_memory()
    in_memory_layout = listing.layout in IN_MEMORY_LAYOUTS  # ImageNet's val/ layouts are read here only
    if stream is None and need <= MEMORY_SHARE * have and in_memory_layout:
        return None
    if stream:
        reason = "--stream"
    elif not in_memory_layout:
        reason = f"layout {listing.layout}"
    else:
        reason = f"about {need / 1e9:.1f} GB decoded, more than {MEMORY_SHARE:.0%} of the {have / 1e9:.1f} GB available"
    return FolderStream(
        f"imagefolder:{cfg.root}", listing, channels, cfg.size, mean, std, reason, SkipLog(strict)
    )


def load_for_training(
    name: str, data_dir: str | None = None, stream: bool | None = None, strict: bool = False
):
    """An :class:`ImageDataset` in memory, or a :class:`FolderStream` for an image folder that streams
    (``stream=True``, or None and too large for memory). ``stream=False`` always loads into memory."""
    from . import load_dataset  # the package's name, as every caller (and test) sees it

    folder = name.lower().startswith("imagefolder:")
    if stream and not folder:
        raise DataError(f"--stream reads image folders (imagefolder:PATH); {name!r} is loaded into memory")
    if folder and stream is not False:
        found = open_stream(name, stream, strict)
        if found is not None:
            return found
    return load_dataset(name, data_dir=data_dir)
