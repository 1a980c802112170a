"""The MNIST family's loader (MNIST, Fashion-MNIST, KMNIST): four IDX files -> the dataset's tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .idx import read_idx
from .sources import DatasetSpec, verify_md5

__all__ = ["load_idx_dataset"]


def _check_pair(images: np.ndarray, labels: np.ndarray, img_path: Path, lbl_path: Path, n_classes: int):
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{img_path}: {images.shape[0]} images but {lbl_path.name} has {labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= n_classes:
        raise DataError(f"{lbl_path}: label {int(labels.max())} out of range for {n_classes} classes")


def load_idx_dataset(
    spec: DatasetSpec, paths: dict[str, Path], md5s: list[str]
) -> tuple[dict[str, torch.Tensor], list[str], str]:
    """(the four tensors, the class names, how the files were verified) from the spec's IDX files."""
    arrays = {}
    for f in spec.files:  # structure first: a truncated file says "truncated", not "checksum mismatch"
        idx = read_idx(paths[f.filename], expect_ndim=3 if "images" in f.filename else 1)
        if idx.array.dtype != np.uint8:
            raise DataError(f"{idx.path}: expected unsigned byte data, the header says {idx.array.dtype}")
        arrays[f.filename] = idx
    statuses = [
        verify_md5(f, paths[f.filename], md5, arrays[f.filename].md5)
        for f, md5 in zip(spec.files, md5s, strict=True)
    ]
    tensors = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img = arrays[f"{prefix}-images-idx3-ubyte.gz"]
        lbl = arrays[f"{prefix}-labels-idx1-ubyte.gz"]
        _check_pair(img.array, lbl.array, img.path, lbl.path, len(spec.classes))
        tensors[f"{split}_images"] = torch.from_numpy(img.array).unsqueeze(1).contiguous()  # (N, 1, 28, 28)
        tensors[f"{split}_labels"] = torch.from_numpy(lbl.array.astype(np.int64))
    worst = next((s for s in statuses if s != "verified"), "verified")
    return tensors, list(spec.classes), worst
