"""Datasets as in-memory uint8 tensors: MNIST, Fashion-MNIST (default), KMNIST, CIFAR-10/100, image folders.

``load_dataset(name, data_dir=None, download=True) -> ImageDataset``; see ``docs/data.md`` for where files
are looked for, how they are checked and the cache layout. ``dataset_facts(name)`` says what a dataset's
images look like (native size, polarity, mirroring, margin), for everyone who prepares images like them.
"""

from .datasets import load_dataset
from .idx import IdxFile, read_idx
from .sources import DEFAULT_DATASET, SPECS, DatasetFacts, dataset_facts
from .types import ImageDataset, channel_stats

__all__ = [
    "DEFAULT_DATASET",
    "DATASETS",
    "DatasetFacts",
    "IdxFile",
    "ImageDataset",
    "channel_stats",
    "dataset_facts",
    "load_dataset",
    "read_idx",
]

DATASETS = (*SPECS, "imagefolder:PATH")
