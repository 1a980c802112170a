"""Every form of training data people have, brought to one of fit's two engines.

- Arrays (numpy or torch): N×H×W, N×H×W×C (Keras) or N×C×H×W, the layout detected and said once; uint8
  images are scaled by cnnzoo (/255 and the card's normalisation), float images are taken as they are;
  labels are integers of any dtype. All of these run on the in-memory engine
  (:class:`~cnnzoo.train.sources.TensorBatches`).
- A map-style ``Dataset``: read into such arrays when it fits in memory, else streamed in the same batches
  (:mod:`cnnzoo.train.mapstyle`; fit's header says which and why).
- A ``DataLoader`` runs as its user built it (its batch size, workers, sampler): :class:`LoaderData`.
- A dataset name, an ``ImageDataset`` or an image folder: as before (:func:`~cnnzoo.train.sources.resolve`).

:func:`user_data` is the one entry point; :func:`as_images` and :func:`as_labels` are its array checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from ..config import TrainConfig
from ..errors import ShapeError
from .data import Data
from .mapstyle import (
    Item,
    Streamed,
    batches_of,
    first_item,
    pixel_dtype,
    pixel_layout,
    plan,
    read_items,
    stats_sample,
)

__all__ = ["LoaderData", "LoaderEval", "user_data", "as_images", "as_labels", "is_user_data", "loader_batch"]

TRAIN, VALIDATION = "the training Dataset", "the validation Dataset"


@dataclass
class LoaderData:
    """A user's DataLoader: iterated as given every epoch; the card's input size from its first batch. Or
    a Dataset too large for memory (``loader`` is then a :class:`~cnnzoo.train.mapstyle.Streamed`)."""

    name: str
    loader: object  # torch.utils.data.DataLoader (or any re-iterable of (images, labels) batches), Streamed
    val: object  # (images, labels) tensors, a LoaderEval, a Streamed, or None
    channels: int
    size: tuple[int, int]
    classes: list[str]
    layout: str  # "NCHW", "NHWC" or "NHW"
    floats: bool  # float batches are taken as they are; uint8 ones are scaled and normalised
    mean: tuple[float, ...]
    std: tuple[float, ...]
    test_x: None = None
    how: str = ""  # a streamed Dataset: why (fit's header)


class LoaderEval:
    """A validation DataLoader: ``batches()`` yields its (images, labels) on ``device``, N×C×H×W."""

    def __init__(self, loader, device: torch.device | None = None) -> None:
        self.loader, self.device = loader, device

    def batches(self, batch_size: int | None = None):
        for images, labels in batches_of(self.loader):
            x, _ = as_images(images)
            yield x.to(self.device), as_labels(labels, len(x)).to(self.device)

    def sample(self, n: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys, have = [], [], 0
        for x, y in self.batches():
            xs.append(x.cpu())
            ys.append(y.cpu())
            have += len(y)
            if have >= n:
                break
        return torch.cat(xs)[:n], torch.cat(ys)[:n]


def loader_batch(images, labels, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One DataLoader batch as N×C×H×W images and int64 labels on ``device``."""
    x, _ = as_images(images)
    return x.to(device, non_blocking=True), as_labels(labels, len(x)).to(device, non_blocking=True)


def is_user_data(data) -> bool:
    """Arrays, a Dataset or a DataLoader: data cnnzoo knows nothing about (no split, shift or flip unless
    asked)."""
    from torch.utils.data import DataLoader

    if isinstance(data, (DataLoader, Dataset)) or _is_array(data):
        return True
    return isinstance(data, (tuple, list)) and len(data) == 2 and _is_array(data[0])


def user_data(x, y=None, validation_data=None, config: TrainConfig | None = None) -> Data | LoaderData:
    """``fit(model, x, y, validation_data=...)``'s data as a :class:`Data` (in memory) or a
    :class:`LoaderData`. ``x`` is arrays (with ``y``), an ``(images, labels)`` pair, a Dataset or a
    DataLoader; ``validation_data`` is ``(images, labels)``, a Dataset or a DataLoader. With fit's
    ``config`` a map-style Dataset (and a validation Dataset with it) is read into memory when it fits and
    streamed when it does not (:mod:`cnnzoo.train.mapstyle`); without it (``evaluate``) it is read."""
    from torch.utils.data import DataLoader

    if isinstance(x, DataLoader):
        return _loader_data(x, validation_data)
    layout = how = ""
    if _is_dataset(x):
        first = first_item(x, TRAIN)
        val = first_item(validation_data, VALIDATION) if _is_dataset(validation_data) else None
        if val:
            _same_shape(val.chw, first.chw)
        if config is not None:
            chosen = plan((len(x), len(validation_data)) if val else (len(x),), first, config)
            if chosen.stream:
                return _dataset_stream(x, first, validation_data, val, chosen.how)
            how = chosen.how
        x, y = read_items(x, range(len(x)), first, TRAIN)
        layout = first.layout
        if val:
            validation_data = read_items(validation_data, range(len(validation_data)), val, VALIDATION)
    elif isinstance(x, Dataset):
        x, y = x.tensors
    elif y is None and isinstance(x, (tuple, list)) and len(x) == 2:
        x, y = x
    if y is None:
        raise ShapeError("fit(model, x, y): the labels y are missing (or pass an (images, labels) pair)")
    images, found = as_images(x)
    labels = as_labels(y, len(images))
    val_x = val_y = None
    if validation_data is not None:
        val_x, val_y = _validation_tensors(validation_data)
        _same_shape(tuple(val_x.shape[1:]), tuple(images.shape[1:]))
    k = int(max(labels.max(), val_y.max() if val_y is not None and len(val_y) else 0)) + 1
    floats = images.dtype != torch.uint8
    mean, std = _stats(images)
    return Data(
        "arrays",
        images,
        labels,
        None,
        None,
        [str(i) for i in range(k)],
        mean,
        std,
        val_x=val_x,
        val_y=val_y,
        floats=floats,
        layout=layout or found,
        how=how,
    )


def _is_dataset(data) -> bool:
    """A map-style Dataset other than a TensorDataset of (images, labels), which is in memory already."""
    from torch.utils.data import TensorDataset

    tensors = isinstance(data, TensorDataset) and len(data.tensors) == 2
    return isinstance(data, Dataset) and not tensors


def _same_shape(val: tuple, train: tuple) -> None:
    if tuple(val) != tuple(train):
        raise ShapeError(
            f"validation images are {tuple(val)} (C, H, W) but the training images are {tuple(train)}"
        )


def _dataset_stream(ds, first: Item, validation_data, val: Item | None, how: str) -> LoaderData:
    """A Dataset too large for memory: its first item's size, a sample's statistics; make_sources builds
    its DataLoader (and a validation Dataset's)."""
    from torch.utils.data import DataLoader

    from ..data import channel_stats

    if val:
        validation_data = Streamed(validation_data, val, VALIDATION)
    elif isinstance(validation_data, DataLoader):
        validation_data = LoaderEval(validation_data)
    elif validation_data is not None:
        validation_data = _validation_tensors(validation_data)
        _same_shape(tuple(validation_data[0].shape[1:]), first.chw)
    c = first.chw[0]
    if first.dtype == torch.uint8:  # from a sample: all of a small Dataset, as the in-memory path has
        mean, std = channel_stats(read_items(ds, stats_sample(len(ds)), first, TRAIN)[0])
    else:
        mean, std = (0.0,) * c, (1.0,) * c
    floats = first.dtype != torch.uint8
    streamed = Streamed(ds, first, TRAIN)
    return LoaderData(
        "Dataset", streamed, validation_data, c, first.chw[1:], [], first.layout, floats, mean, std, how=how
    )


def _validation_tensors(validation_data) -> tuple[torch.Tensor, torch.Tensor]:
    from torch.utils.data import DataLoader

    if isinstance(validation_data, DataLoader):
        validation_data = validation_data.dataset
    if isinstance(validation_data, Dataset):
        validation_data = _read_dataset(validation_data, VALIDATION)
    if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
        raise ShapeError(
            "validation_data must be (images, labels), a Dataset or a DataLoader, got "
            f"{type(validation_data).__name__}"
        )
    vx, _ = as_images(validation_data[0])
    return vx, as_labels(validation_data[1], len(vx))


def _loader_data(loader, validation_data) -> LoaderData:
    from torch.utils.data import DataLoader

    try:
        first = next(iter(batches_of(loader)))
    except StopIteration:
        raise ShapeError("the training DataLoader is empty") from None
    if not (isinstance(first, (tuple, list)) and len(first) == 2):
        raise ShapeError("a training DataLoader must yield (images, labels) batches")
    images, layout = as_images(first[0])
    floats = images.dtype != torch.uint8
    val = None
    if isinstance(validation_data, DataLoader):
        val = LoaderEval(validation_data)
    elif validation_data is not None:
        val = _validation_tensors(validation_data)
    mean, std = _stats(images)  # the first batch's statistics: a loader is not read twice
    return LoaderData(
        "DataLoader", loader, val, images.shape[1], tuple(images.shape[2:]), [], layout, floats, mean, std
    )


def _read_dataset(ds, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A map-style Dataset's (images, labels) in memory: a TensorDataset's tensors as they are."""
    if not _is_dataset(ds):
        return ds.tensors
    first = first_item(ds, what)
    return read_items(ds, range(len(ds)), first, what)


def _numpy_ok(a):
    import numpy as np

    return np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a


def _is_array(a) -> bool:
    return isinstance(a, torch.Tensor) or type(a).__module__ == "numpy"


def as_images(x) -> tuple[torch.Tensor, str]:
    """Images as an N×C×H×W tensor (uint8 kept, floats as float32) and the layout they came in."""
    if not _is_array(x):
        raise ShapeError(f"images must be a numpy array or a torch tensor, got {type(x).__name__}")
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(_numpy_ok(x))
    if t.ndim not in (3, 4):
        raise ShapeError(f"images must be N×H×W, N×H×W×C or N×C×H×W, got shape {tuple(t.shape)}")
    layout, _ = pixel_layout(tuple(t.shape[1:]), "images")
    if pixel_dtype(t, "images") == torch.float32:
        t = t.float()
    elif t.dtype != torch.uint8:
        if len(t) and not (0 <= t.min() and t.max() <= 255):
            kind = str(t.dtype).removeprefix("torch.")
            raise ShapeError(
                f"images must be uint8 (0..255, scaled by cnnzoo) or float, got {kind} beyond 0..255"
            )
        t = t.to(torch.uint8)  # integer pixels in 0..255
    if layout == "NHW":
        return t[:, None], layout
    return (t.permute(0, 3, 1, 2).contiguous() if layout == "NHWC" else t), layout


def as_labels(y, n: int) -> torch.Tensor:
    """Class indices of any integer dtype (numpy or torch, or a list) as int64, one per image."""
    t = y if isinstance(y, torch.Tensor) else torch.as_tensor(_numpy_ok(y) if _is_array(y) else list(y))
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 1 or len(t) != n:
        raise ShapeError(f"labels must be {n} class indices (shape ({n},)), got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ShapeError(f"labels must be integer class indices, got {str(t.dtype).removeprefix('torch.')}")
    t = t.long()
    if len(t) and int(t.min()) < 0:
        raise ShapeError(f"labels must be class indices >= 0, got {int(t.min())}")
    return t


def _stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """uint8 images: their per-channel mean/std (what the card normalises with); floats: none (0 and 1)."""
    from ..data import channel_stats

    if images.dtype == torch.uint8:
        return channel_stats(images)
    c = images.shape[1]
    return (0.0,) * c, (1.0,) * c


def any_dtype_prepare(
    prepare, input_size, crop_padding: int = 0, hflip: bool = False, channels_last: bool = False
):
    """``prepare`` for uint8 batches (scaled and normalised by the card); float batches are taken as they
    are: only padded or resized to the model's input size, shifted and mirrored when asked."""
    import torch.nn.functional as F

    from .augment import random_crop, random_hflip

    def both(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.dtype == torch.uint8:
            return prepare(x, generator)
        x = x.float()
        h, w = input_size[-2:]
        if tuple(x.shape[-2:]) != (h, w):
            dh, dw = h - x.shape[-2], w - x.shape[-1]
            if 0 <= dh <= h // 4 and 0 <= dw <= w // 4:
                x = F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
            else:
                x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        if generator is not None:
            x = random_crop(x, crop_padding, generator)
            x = random_hflip(x, 0.5, generator) if hflip else x
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    return both
