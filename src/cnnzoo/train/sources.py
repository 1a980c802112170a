"""Where the trainer's batches come from: the in-memory tensors, an image folder streamed by workers, a
user's DataLoader, or a user's Dataset too large for memory (streamed in the in-memory path's batches).

Both give the epoch loop the same interface: ``steps`` (batches per epoch), ``epoch(e)`` (an iterator of
this rank's (uint8 images, labels) batches on the device) and ``augment_generator(e)`` (the generator the
batch preparation draws crops and flips from; None when the stream's workers already did it). Evaluation
sets are an ``(images, labels)`` pair in memory or a :class:`~cnnzoo.data.stream.StreamEval`;
:func:`evaluate_on` evaluates either.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..card import ModelCard
from ..config import TrainConfig
from ..data.stream import FolderStream, StreamEval, StreamTrain, default_workers, load_for_training
from ..errors import CnnzooError
from . import distributed as ddp
from .data import Data, epoch_generator, resolve_data, split, subset
from .inputs import LoaderData, LoaderEval, is_user_data, loader_batch, user_data
from .loop import evaluate_batches, evaluate_tensors, tensor_batches
from .mapstyle import Streamed, batches_of, eval_loader, train_loader

__all__ = [
    "TensorBatches",
    "Sources",
    "resolve",
    "make_sources",
    "evaluate_on",
    "as_tensors",
    "stream_result",
]


class TensorBatches:
    """The in-memory training set: an epoch is a permutation seeded with (seed, epoch), cut in global
    batches of which each rank takes ``batch[rank::world_size]`` (:func:`~cnnzoo.train.loop.tensor_batches`)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch: int, seed: int, info: ddp.DistInfo):
        self.images, self.labels, self.batch, self.seed, self.info = images, labels, batch, seed, info
        self.steps = max(1, len(images) // batch)

    def epoch(self, epoch: int):
        order = torch.randperm(len(self.images), generator=epoch_generator(self.seed, epoch))
        return tensor_batches(self.images, self.labels, order, self.batch, self.info)

    def augment_generator(self, epoch: int) -> torch.Generator:
        return epoch_generator(self.seed, epoch, 1 + self.info.rank)


class LoaderBatches:
    """A user's DataLoader, iterated as its user built it (batch size, workers, sampler); its batches are
    brought to N×C×H×W on the device. The loader's own randomness is the global RNG, which fit seeds."""

    def __init__(self, loader, device: torch.device):
        self.loader, self.device = loader, device
        self.steps = max(1, len(loader)) if hasattr(loader, "__len__") else 1

    def epoch(self, epoch: int):
        for images, labels in batches_of(self.loader):
            yield loader_batch(images, labels, self.device)

    def augment_generator(self, epoch: int) -> None:
        return None


class DatasetBatches(LoaderBatches):
    """A user's Dataset too large for memory, streamed in :class:`TensorBatches`'s batches (its loader's
    :class:`~cnnzoo.train.mapstyle.EpochBatches`) with its augmentation draws: the same run as in memory."""

    def __init__(self, loader, seed: int, info: ddp.DistInfo, device: torch.device):
        super().__init__(loader, device)
        self.seed, self.info = seed, info

    def epoch(self, epoch: int):
        self.loader.batch_sampler.set_epoch(epoch)
        return super().epoch(epoch)

    def augment_generator(self, epoch: int) -> torch.Generator:
        return epoch_generator(self.seed, epoch, 1 + self.info.rank)


@dataclass
class Sources:
    source: TensorBatches | StreamTrain | LoaderBatches | DatasetBatches  # the training batches
    train: tuple[torch.Tensor, torch.Tensor] | None  # the training tensors (None when streaming)
    val: tuple[torch.Tensor, torch.Tensor] | StreamEval | None
    test: tuple[torch.Tensor, torch.Tensor] | StreamEval | None
    batch: int  # the global batch


def resolve(data, cfg: TrainConfig, y=None, validation_data=None) -> Data | FolderStream | LoaderData:
    """``fit``'s data: a :class:`FolderStream` as it is; ``imagefolder:PATH`` streamed when ``cfg.stream``
    says so or it is too large for memory; a user's arrays, Dataset or DataLoader
    (:func:`~cnnzoo.train.inputs.user_data`); anything else in memory
    (:func:`~cnnzoo.train.data.resolve_data`)."""
    if y is not None or is_user_data(data):
        return user_data(data, y, validation_data, cfg)
    if validation_data is not None:
        raise CnnzooError(
            "validation_data is for your own arrays, Dataset or DataLoader; a named dataset "
            "takes validation_split"
        )
    if isinstance(data, FolderStream):
        return data
    if isinstance(data, str):
        data = load_for_training(data, stream=cfg.stream, strict=cfg.strict)
        if isinstance(data, FolderStream):
            return data
    return resolve_data(data)


def channels_of(ds: Data | FolderStream | LoaderData) -> int:
    return ds.channels if isinstance(ds, (FolderStream, LoaderData)) else ds.train_x.shape[1]


def input_of(ds: Data | FolderStream | LoaderData) -> tuple[int, int, int]:
    """The input size of a model without a card: the images' size (a stream: ``?size=``, else 224)."""
    if isinstance(ds, LoaderData):
        return (ds.channels, *ds.size)
    if isinstance(ds, FolderStream):
        return (ds.channels, *(ds.size or (224, 224)))
    return tuple(ds.train_x.shape[1:])


def _global_batch(n: int, cfg: TrainConfig, info: ddp.DistInfo) -> int:
    return min(cfg.batch_size, n - n % info.world_size)


def make_sources(
    ds: Data | FolderStream,
    card: ModelCard,
    cfg: TrainConfig,
    info: ddp.DistInfo,
    device: torch.device,
    hflip: bool,
) -> Sources:
    """The training batches and the validation and test sets of a run: ``--limit`` and
    ``--validation-split`` are the same seeded draws in memory and streaming."""
    if isinstance(ds, FolderStream):
        return _stream_sources(ds, card, cfg, info, device, hflip)
    if isinstance(ds, LoaderData) and isinstance(ds.loader, Streamed):
        return _dataset_sources(ds, cfg, info, device)
    if isinstance(ds, LoaderData):
        if isinstance(ds.val, LoaderEval):
            ds.val.device = device
        return Sources(
            LoaderBatches(ds.loader, device), None, ds.val, None, getattr(ds.loader, "batch_size", 0)
        )
    x, y = subset(ds.train_x, ds.train_y, cfg.limit, cfg.seed)
    if ds.val_x is not None:
        train_x, train_y, val_x, val_y = x, y, ds.val_x, ds.val_y
    else:
        train_x, train_y, val_x, val_y = split(x, y, cfg.validation_split, cfg.seed)
    train = (train_x.to(device), train_y.to(device))  # the whole set lives on the device
    test = None
    if ds.test_x is not None:
        test = subset(ds.test_x, ds.test_y, cfg.limit, cfg.seed)
        if cfg.test_every_epoch:
            test = (test[0].to(device), test[1].to(device))
    batch = _global_batch(len(train_x), cfg, info)
    return Sources(
        TensorBatches(*train, batch, cfg.seed, info),
        train,
        None if val_x is None else (val_x, val_y),
        test,
        batch,
    )


def _stream_sources(
    ds: FolderStream, card: ModelCard, cfg: TrainConfig, info: ddp.DistInfo, device: torch.device, hflip: bool
) -> Sources:
    listing, size = ds.listing, ds.size or tuple(card.input_size[1:])
    workers = default_workers() if cfg.workers is None else cfg.workers

    def pick(items, n, fraction):  # the in-memory path's subset and split, on indices
        idx = torch.arange(len(items))
        idx, _ = subset(idx, idx, n, cfg.seed)
        if fraction is None:
            return [items[i] for i in idx.tolist()], None
        tr, _, va, _ = split(idx, idx, fraction, cfg.seed)
        return [items[i] for i in tr.tolist()], None if va is None else [items[i] for i in va.tolist()]

    train_items, val_items = pick(listing.train, cfg.limit, cfg.validation_split)
    test_items, _ = pick(listing.test, cfg.limit, None)
    batch = _global_batch(len(train_items), cfg, info)
    source = StreamTrain(
        ds,
        train_items,
        size,
        batch // info.world_size,
        info.rank,
        info.world_size,
        cfg.seed,
        hflip,
        workers,
        device,
    )

    def evaluation(items):
        return StreamEval(ds, items, size, info.rank, info.world_size, workers, device) if items else None

    return Sources(source, None, evaluation(val_items), evaluation(test_items), batch)


def _dataset_sources(ds: LoaderData, cfg: TrainConfig, info: ddp.DistInfo, device: torch.device) -> Sources:
    """A Dataset too large for memory: the in-memory path's ``--limit``, split and batches, on indices."""
    train = ds.loader
    idx = torch.arange(len(train.ds))
    idx, _ = subset(idx, idx, cfg.limit, cfg.seed)
    val = ds.val
    if val is None:
        idx, _, held, _ = split(idx, idx, cfg.validation_split, cfg.seed)
        val = (
            None if held is None else eval_loader(train.ds, held, train.first, train.what, cfg, info, device)
        )
    elif isinstance(val, Streamed):
        val = eval_loader(val.ds, torch.arange(len(val.ds)), val.first, val.what, cfg, info, device)
    if isinstance(val, LoaderEval):
        val.device = device
    elif val is not None and not isinstance(val, tuple):
        val = LoaderEval(val, device)
    batch = _global_batch(len(idx), cfg, info)
    loader = train_loader(train.ds, idx, train.first, batch, cfg, info, device)
    return Sources(DatasetBatches(loader, cfg.seed, info, device), None, val, None, batch)


def evaluate_on(
    model: nn.Module, part, prepare, num_classes: int, batch_size: int, info: ddp.DistInfo, **kw
) -> dict:
    """:func:`~cnnzoo.train.loop.evaluate_tensors` on an ``(images, labels)`` pair, or a streamed set."""
    if isinstance(part, (StreamEval, LoaderEval)):
        return evaluate_batches(model, part.batches(batch_size), prepare, num_classes, info, **kw)
    return evaluate_tensors(model, *part, prepare, num_classes, batch_size, info, **kw)


def as_tensors(part, n: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of an evaluation set: a streamed one's first ``n`` readable images."""
    return part.sample(n) if isinstance(part, (StreamEval, LoaderEval)) else part


def stream_result(ds: Data | FolderStream, workers: int | None, info: ddp.DistInfo) -> dict:
    """result.json's record of a stream: the files skipped on any rank (each counted once), the workers."""
    if not isinstance(ds, FolderStream):
        return {}
    skipped = set(ds.skips.paths)
    if info.enabled:
        every: list = [None] * info.world_size
        torch.distributed.all_gather_object(every, skipped)
        skipped = set().union(*every)
    return {
        "stream": True,
        "skipped_files": len(skipped),
        "workers": default_workers() if workers is None else workers,
    }
