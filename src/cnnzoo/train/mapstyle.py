"""A user's map-style ``Dataset`` (``__len__`` and ``__getitem__`` giving (image, label)): read into memory
when it fits, streamed when it does not.

- **The choice** (:func:`plan`): item 0's size × the number of items against :func:`memory_budget`,
  ``MEMORY_SHARE`` of the memory free (the rule image folders follow, :mod:`cnnzoo.data.stream`), or
  ``stream=`` when given. fit's header says which and why.
- **In memory** (:func:`read_items`): one N×C×H×W tensor allocated from item 0's shape and filled in place,
  so the peak is the data's own size (no list of items, no stack).
- **Streamed** (:func:`train_loader`, :func:`eval_loader`): a ``DataLoader`` whose batches are the in-memory
  path's, index for index: epoch e's permutation seeded with (seed, e), cut in global batches of which each
  rank takes ``batch[rank::world_size]`` (:class:`EpochBatches`). So ``seed=`` repeats a run exactly, a
  resumed run continues it, and streaming a Dataset trains the same weights as reading it.

A wrong-shaped item is one line naming its index, in memory and streamed (a worker hands the error back
with the batch; the training process raises it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import TrainConfig
from ..data.stream import MEMORY_SHARE, available_memory, default_workers
from ..errors import ShapeError
from . import distributed as ddp
from .data import epoch_generator
from .memory import memory_limit

__all__ = [
    "CHANNELS",
    "Item",
    "pixel_dtype",
    "pixel_layout",
    "Plan",
    "Streamed",
    "first_item",
    "memory_budget",
    "plan",
    "read_items",
    "stats_sample",
    "EpochBatches",
    "train_loader",
    "eval_loader",
    "batches_of",
]

CHANNELS = (1, 3, 4)
STATS_SAMPLE = 256  # items read for a streamed Dataset's mean/std (all of them when it has no more)
_INTEGERS = (torch.int8, torch.int16, torch.int32, torch.int64)


@dataclass
class Item:
    """Item 0 of a Dataset: what every other item must look like."""

    image: torch.Tensor  # as given
    label: int
    layout: str  # the items' layout: "NHW", "NHWC" or "NCHW" (a batch of them)
    chw: tuple[int, int, int]
    dtype: torch.dtype  # as held: uint8 (integer pixels 0..255) or float32

    @property
    def nbytes(self) -> int:
        return math.prod(self.chw) * self.dtype.itemsize


def _pair(item, i: int, what: str):
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        raise ShapeError(f"{what} must give (image, label) pairs; item {i} is a {type(item).__name__}")
    return item


def _tensor(a) -> torch.Tensor:
    import numpy as np

    return torch.as_tensor(np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a)


def _label(value, i: int, what: str) -> int:
    if type(value) is int:
        return value
    t = _tensor(value)
    if t.numel() != 1 or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ShapeError(f"{what}'s item {i} has label {value!r}: labels must be integer class indices")
    return int(t)


def pixel_layout(shape: tuple[int, ...], what: str) -> tuple[str, tuple[int, int, int]]:
    """One image's layout, named as a batch of them is ("NHW", "NCHW", "NHWC"), and its C×H×W."""
    if len(shape) == 2:
        return "NHW", (1, *shape)
    if len(shape) == 3 and shape[0] in CHANNELS:
        return "NCHW", shape
    if len(shape) == 3 and shape[2] in CHANNELS:
        return "NHWC", (shape[2], shape[0], shape[1])
    raise ShapeError(f"{what} must be H×W, H×W×C or C×H×W with 1, 3 or 4 channels, got {shape}")


def pixel_dtype(t: torch.Tensor, what: str) -> torch.dtype:
    """What images of ``t``'s dtype are held as: uint8 (integer pixels, 0..255) or float32 (taken as is)."""
    if t.is_floating_point():
        return torch.float32
    if t.dtype == torch.uint8 or t.dtype in _INTEGERS:
        return torch.uint8
    raise ShapeError(
        f"{what} must be uint8 (0..255, scaled by cnnzoo) or float (taken as is), got "
        f"{str(t.dtype).removeprefix('torch.')}"
    )


def first_item(ds, what: str) -> Item:
    """Item 0 of ``ds``, checked: an (image, label) pair, an H×W, H×W×C or C×H×W image, uint8 or float."""
    try:
        n = len(ds)
    except TypeError:
        raise ShapeError(f"{what} has no length: wrap it in a DataLoader") from None
    if n == 0:
        raise ShapeError(f"{what} is empty")
    image, label = _pair(ds[0], 0, what)
    t = _tensor(image)
    layout, chw = pixel_layout(tuple(t.shape), f"{what}'s images")
    dtype = pixel_dtype(t, f"{what}'s images")
    return Item(t, _label(label, 0, what), layout, chw, dtype)


def _as_chw(first: Item, image, i: int, what: str) -> torch.Tensor:
    """Item ``i``'s image as C×H×W (a view), refused in one line unless shaped and typed like item 0."""
    t = _tensor(image)
    if t.shape != first.image.shape:
        raise ShapeError(
            f"{what}'s item {i} is an image of shape {tuple(t.shape)} but item 0's is "
            f"{tuple(first.image.shape)}: every image must have the same shape"
        )
    if first.dtype == torch.float32:
        ok, kind = t.is_floating_point(), "floats"
    else:
        small = t.dtype in _INTEGERS and (not t.numel() or (0 <= t.min() and t.max() <= 255))
        ok, kind = t.dtype == torch.uint8 or small, "integers 0..255"
    if not ok:
        raise ShapeError(f"{what}'s item {i} is not an image of {kind}" + (" as item 0 is" if i else ""))
    if first.layout == "NHW":
        return t[None]
    return t.permute(2, 0, 1) if first.layout == "NHWC" else t


def _fill(first: Item, images: torch.Tensor, labels: torch.Tensor, k: int, i: int, item, what: str) -> None:
    image, label = item
    images[k] = _as_chw(first, image, i, what)
    labels[k] = _label(label, i, what)


def read_items(ds, indices, first: Item, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Items ``indices`` of ``ds`` as (N×C×H×W images, int64 labels), filled in place: one item alive at a
    time beside the result (item 0 is not read again)."""
    images = torch.empty((len(indices), *first.chw), dtype=first.dtype)
    labels = torch.empty(len(indices), dtype=torch.int64)
    for k, i in enumerate(indices):  # no name holds an item: it is freed as soon as it is copied
        _fill(
            first, images, labels, k, i, (first.image, first.label) if i == 0 else _pair(ds[i], i, what), what
        )
    return images, labels


def stats_sample(n: int) -> list[int]:
    """The items a streamed Dataset's mean/std are taken from: all of them, or a seeded sample."""
    if n <= STATS_SAMPLE:
        return list(range(n))
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:STATS_SAMPLE].sort().values.tolist()


@dataclass
class Streamed:
    """A Dataset to stream, checked against its item 0: :func:`~cnnzoo.train.sources.make_sources` builds
    its DataLoader (it knows the ranks, the device and the split)."""

    ds: object
    first: Item
    what: str


@dataclass
class Plan:
    stream: bool
    how: str  # fit's header: which, and why


def memory_budget(device: str | None) -> tuple[int, str]:
    """Bytes a user's Dataset may take when read into memory, and the words for it: ``MEMORY_SHARE`` of the
    memory free here (and on the GPU, where a read set is trained from)."""
    have, where = available_memory(), "free"
    if device is not None and (device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())):
        gpu = memory_limit(device)
        if gpu is not None and gpu < have:
            have, where = gpu, "free on the GPU"
    return int(MEMORY_SHARE * have), f"{MEMORY_SHARE:.0%} of the {_size(have)} {where}"


def plan(counts: tuple[int, ...], first: Item, cfg: TrainConfig) -> Plan:
    """Read the items (``counts``: the training Dataset's, and a validation Dataset's) into memory, or
    stream them: ``cfg.stream`` if set, else whether they fit :func:`memory_budget`."""
    need = sum(counts) * first.nbytes
    sizes = f"{' + '.join(f'{n:,}' for n in counts)} images × {first.nbytes:,} bytes = {_size(need)}"
    if cfg.stream is not None:
        return Plan(
            cfg.stream, f"{'streamed' if cfg.stream else 'read into memory'}: stream={cfg.stream}, {sizes}"
        )
    budget, words = memory_budget(cfg.device)
    if need > budget:
        return Plan(True, f"streamed: {sizes} > {_size(budget)} ({words})")
    return Plan(False, f"read into memory: {sizes} ≤ {_size(budget)} ({words})")


def _size(b: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= scale:
            return f"{b / scale:,.1f} {unit}"
    return f"{b} bytes"


class EpochBatches(Sampler):
    """The in-memory path's batches as index lists (:class:`~cnnzoo.train.sources.TensorBatches`): epoch
    e's permutation of ``indices`` seeded with (seed, e), cut in global batches of ``batch`` (the tail that
    does not fill one dropped), this rank's share of each. ``set_epoch(e)`` before each epoch."""

    def __init__(self, indices: torch.Tensor, batch: int, seed: int, info: ddp.DistInfo):
        self.indices, self.batch, self.seed, self.info, self.epoch = indices, batch, seed, info, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return max(1, len(self.indices) // self.batch)

    def __iter__(self):
        order = torch.randperm(len(self.indices), generator=epoch_generator(self.seed, self.epoch))
        for step in range(len(self)):
            yield self.indices[
                ddp.shard(order[step * self.batch : (step + 1) * self.batch], self.info)
            ].tolist()


class _Indexed(Dataset):
    """``ds[i]`` with its index, so that a wrong item can be named."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return i, self.ds[i]


class _Collate:
    """A batch of (index, item) as (N×C×H×W images, labels), or the ShapeError naming a wrong item (handed
    back from a worker as data, raised by :func:`batches_of` in the training process)."""

    def __init__(self, first: Item, what: str):
        self.first, self.what = first, what

    def __call__(self, batch):
        images = torch.empty((len(batch), *self.first.chw), dtype=self.first.dtype)
        labels = torch.empty(len(batch), dtype=torch.int64)
        try:
            for k, (i, item) in enumerate(batch):
                _fill(self.first, images, labels, k, i, _pair(item, i, self.what), self.what)
        except ShapeError as e:
            return e
        return images, labels


def batches_of(loader):
    """The (images, labels) batches of a loader built here, a wrong item raised as its one-line error."""
    for batch in loader:
        if isinstance(batch, ShapeError):
            raise batch
        yield batch


def _loader(
    ds, first: Item, what: str, cfg: TrainConfig, device: torch.device, train: bool, **kw
) -> DataLoader:
    """Training keeps its workers from epoch to epoch (as a streamed folder's do); evaluation starts them."""
    workers = default_workers() if cfg.workers is None else cfg.workers
    return DataLoader(
        _Indexed(ds),
        num_workers=workers,
        collate_fn=_Collate(first, what),
        pin_memory=device.type == "cuda",
        persistent_workers=train and workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed),  # the workers' seeds: not the global RNG's draws
        **kw,
    )


def train_loader(
    ds,
    indices: torch.Tensor,
    first: Item,
    batch: int,
    cfg: TrainConfig,
    info: ddp.DistInfo,
    device: torch.device,
) -> DataLoader:
    """Items ``indices`` of ``ds`` in :class:`EpochBatches` of the global ``batch``, read by ``cfg.workers``
    worker processes (None: this process's share of the cores, at most 8; 0: read here)."""
    sampler = EpochBatches(indices, batch, cfg.seed, info)
    return _loader(ds, first, "the training Dataset", cfg, device, True, batch_sampler=sampler)


def eval_loader(
    ds,
    indices: torch.Tensor,
    first: Item,
    what: str,
    cfg: TrainConfig,
    info: ddp.DistInfo,
    device: torch.device,
) -> DataLoader:
    """Items ``indices`` of ``ds`` in order, this rank's share, in batches of ``cfg.eval_batch_size``."""
    share = ddp.shard(indices, info).tolist()
    return _loader(ds, first, what, cfg, device, False, batch_size=cfg.eval_batch_size, sampler=share)
