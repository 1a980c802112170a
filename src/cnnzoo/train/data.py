"""What ``fit`` and ``evaluate`` train and test on: any accepted data as uint8 tensors, subsets and splits.

The whole dataset is one uint8 tensor in memory (Fashion-MNIST: 47 MB), so a batch is one index operation
with a slice of a permutation. Every random choice here comes from a generator seeded by the run's seed, so
a run and its ``--resume`` see the same images in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Data", "resolve_data", "subset", "split", "epoch_generator"]


@dataclass
class Data:
    name: str
    train_x: torch.Tensor  # (N, C, H, W) uint8
    train_y: torch.Tensor  # (N,) int64
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val_x: torch.Tensor | None = None  # a validation set of its own (fit's validation_data)
    val_y: torch.Tensor | None = None
    floats: bool = False  # float images, taken as they are (uint8 ones are scaled and normalised)
    layout: str = ""  # the layout a user's arrays came in (NCHW, NHWC, NHW); "" for a named dataset
    how: str = ""  # a user's Dataset: read into memory, and why (fit's header)


def resolve_data(data, data_dir: str | None = None) -> Data:
    """A dataset name or an ``ImageDataset`` (cnnzoo.data); arrays, Datasets and DataLoaders are
    :func:`cnnzoo.train.inputs.user_data`'s."""
    from ..data import load_dataset

    if isinstance(data, str):
        data = load_dataset(data, data_dir=data_dir)
    return Data(
        data.name,
        data.train_images,
        data.train_labels,
        data.test_images,
        data.test_labels,
        list(data.classes),
        tuple(data.mean),
        tuple(data.std),
    )


def subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """At most ``n`` pairs, drawn by a seeded permutation (all of them when ``n`` is None)."""
    if n is None or n >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


def split(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int):
    """(train_x, train_y, val_x, val_y): the validation part is the tail of a seeded shuffle."""
    n_val = int(round(len(x) * fraction))
    if n_val == 0:
        return x, y, None, None
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + 1))
    tr, va = perm[:-n_val].sort().values, perm[-n_val:].sort().values
    return x[tr], y[tr], x[va], y[va]


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """One independent stream per (seed, epoch, stream): resuming at epoch e needs no saved generator state."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_009 + stream)
