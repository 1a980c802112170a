"""The in-memory dataset record, shared by every loader (the named datasets and image folders)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ImageDataset", "channel_stats"]


@dataclass
class ImageDataset:
    name: str
    train_images: torch.Tensor  # (N, C, H, W) uint8, contiguous
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor  # (M, C, H, W) uint8
    test_labels: torch.Tensor  # (M,) int64
    classes: list[str]
    mean: tuple[float, ...]  # per channel, 0..1 units, on the training images
    std: tuple[float, ...]
    source: str = ""  # where the files were found, e.g. "system: /usr/share/datasets/fashion-mnist"
    checksum: str = ""  # "verified", "verified (decompressed bytes)", "not verified: ..."

    @property
    def image_size(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])  # (C, H, W)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean/std (population, 0..1 units) of uint8 (N, C, H, W) images.

    A 256-bin histogram per channel gives exact sums in float64 without materialising a float copy of
    the whole set (Fashion-MNIST's would be 188 MB)."""
    means, stds = [], []
    values = torch.arange(256, dtype=torch.float64) / 255.0
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        n = counts.sum()
        mean = (counts * values).sum() / n
        var = (counts * (values - mean) ** 2).sum() / n
        means.append(float(mean))
        stds.append(float(var.sqrt()))
    return tuple(means), tuple(stds)
