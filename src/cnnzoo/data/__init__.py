"""Datasets as in-memory uint8 tensors: MNIST, Fashion-MNIST (default), KMNIST, CIFAR-10/100, image folders.

``load_dataset(name, data_dir=None, download=True) -> ImageDataset``; see ``docs/data.md`` for where files
are looked for, how they are checked and the cache layout.
"""

from .datasets import ImageDataset, channel_stats, load_dataset
from .idx import IdxFile, read_idx
from .sources import DEFAULT_DATASET, SPECS

__all__ = [
    "DEFAULT_DATASET",
    "DATASETS",
    "IdxFile",
    "ImageDataset",
    "channel_stats",
    "load_dataset",
    "read_idx",
]

DATASETS = (*SPECS, "imagefolder:PATH")
