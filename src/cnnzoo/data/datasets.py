"""``load_dataset(name)`` -> :class:`ImageDataset`: whole small datasets as in-memory uint8 tensors.

Loading a dataset the first time parses and checks its files (IDX / CIFAR binary / image folder); the
parsed tensors are then cached as one safetensors file in the cache directory, keyed by the MD5 of the
source files, so the next load of Fashion-MNIST reads ~55 MB of tensors instead of decompressing 30 MB of
gzip (well under a second).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ChecksumError, DataError
from .download import download_file
from .idx import read_idx
from .sources import (
    DEFAULT_DATASET,
    DatasetSpec,
    FileSpec,
    cache_root,
    candidate_dirs,
    download_dir,
    get_spec,
    mirror_urls,
)

__all__ = ["ImageDataset", "load_dataset", "channel_stats", "locate", "DEFAULT_DATASET"]

CACHE_VERSION = "1"  # bump when the cached tensor layout changes


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


def _file_md5(path: Path) -> str:
    """Same as torchvision's ``calculate_md5``, without importing torchvision (seconds) on every load."""
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
    return md5.hexdigest()


# ---------------------------------------------------------------- finding files


def _find(directory: Path, f: FileSpec) -> Path | None:
    """The published file, or its decompressed form (``foo.gz`` -> ``foo``) that users often bring."""
    for name in (f.filename, f.filename.removesuffix(".gz")):
        p = directory / name
        if p.is_file():
            return p
    return None


def locate(spec: DatasetSpec, data_dir=None) -> tuple[str, dict[str, Path]] | None:
    """(source label, {published filename: path}) of the first directory holding every file, or None."""
    for label, d in candidate_dirs(spec, data_dir):
        found = {f.filename: _find(d, f) for f in spec.files}
        if all(found.values()):
            return f"{label}: {d}", found
    if spec.kind == "cifar":  # a user's extracted archive: data_dir/cifar-10-batches-bin/*.bin
        from .cifar import find_extracted

        for label, d in candidate_dirs(spec, data_dir):
            if find_extracted(spec, d):
                return f"{label}: {d}", {spec.files[0].filename: d}
    return None


def _fetch(spec: DatasetSpec, data_dir) -> tuple[str, dict[str, Path]]:
    target = download_dir(spec, data_dir)
    paths = {}
    for f in spec.files:
        existing = _find(target, f)
        if existing is not None and _file_md5(existing) == f.md5:
            paths[f.filename] = existing
            continue
        paths[f.filename] = download_file(mirror_urls(spec, f.filename), target / f.filename, f.md5)
    return f"download: {target}", paths


# ---------------------------------------------------------------- checksums


def _verify(f: FileSpec, path: Path, file_md5: str, raw_md5: str | None) -> str:
    """Check a file against the published MD5s; raise ChecksumError on a definite mismatch."""
    if file_md5 == f.md5:
        return "verified"
    if f.raw_md5 and raw_md5 is not None:
        if raw_md5 != f.raw_md5:
            raise ChecksumError(
                f"{path}: checksum mismatch (expected MD5 {f.raw_md5} of the decompressed bytes, got {raw_md5})"
            )
        return "verified (decompressed bytes)"
    if path.name == f.filename:  # the published file itself, byte for byte, yet different
        raise ChecksumError(f"{path}: checksum mismatch (expected MD5 {f.md5}, got {file_md5})")
    return "not verified (no published MD5 for a decompressed copy; structure checked)"


# ---------------------------------------------------------------- the tensor cache


def _cache_path(spec_name: str, md5s: list[str]) -> Path:
    key = hashlib.md5("|".join([CACHE_VERSION, spec_name, *md5s]).encode(), usedforsecurity=False)
    return cache_root() / spec_name / f"tensors-{key.hexdigest()[:16]}.safetensors"


def _load_cached(path: Path, name: str) -> ImageDataset | None:
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["cnnzoo"])
            t = {k: f.get_tensor(k) for k in ("train_images", "train_labels", "test_images", "test_labels")}
    except (OSError, SafetensorError, KeyError, ValueError):
        return None  # missing or damaged cache: rebuild it from the source files
    return ImageDataset(
        name,
        t["train_images"],
        t["train_labels"],
        t["test_images"],
        t["test_labels"],
        meta["classes"],
        tuple(meta["mean"]),
        tuple(meta["std"]),
        meta["source"],
        meta["checksum"],
    )


def _save_cached(path: Path, ds: ImageDataset) -> None:
    """Atomic write (temp file + rename); a read-only cache is not an error, just slower next time."""
    from safetensors.torch import save_file

    tensors = {
        "train_images": ds.train_images,
        "train_labels": ds.train_labels,
        "test_images": ds.test_images,
        "test_labels": ds.test_labels,
    }
    meta = {
        "classes": ds.classes,
        "mean": ds.mean,
        "std": ds.std,
        "source": ds.source,
        "checksum": ds.checksum,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tensors.", suffix=".part", dir=path.parent)
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={"cnnzoo": json.dumps(meta)})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass


# ---------------------------------------------------------------- building datasets


def _check_pair(images: np.ndarray, labels: np.ndarray, img_path: Path, lbl_path: Path, n_classes: int):
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{img_path}: {images.shape[0]} images but {lbl_path.name} has {labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= n_classes:
        raise DataError(f"{lbl_path}: label {int(labels.max())} out of range for {n_classes} classes")


def _build_idx(spec: DatasetSpec, paths: dict[str, Path], md5s: list[str]) -> tuple[dict, str]:
    arrays = {}
    for f in spec.files:  # structure first: a truncated file says "truncated", not "checksum mismatch"
        idx = read_idx(paths[f.filename], expect_ndim=3 if "images" in f.filename else 1)
        if idx.array.dtype != np.uint8:
            raise DataError(f"{idx.path}: expected unsigned byte data, the header says {idx.array.dtype}")
        arrays[f.filename] = idx
    statuses = [
        _verify(f, paths[f.filename], md5, arrays[f.filename].md5)
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
    return tensors, worst


def _load_spec(spec: DatasetSpec, data_dir, download: bool) -> ImageDataset:
    found = locate(spec, data_dir)
    if found is None:
        if not download:
            places = ", ".join(str(d) for _, d in candidate_dirs(spec, data_dir))
            raise DataError(
                f"{spec.name}: files not found (looked in {places}); allow download or pass --data-dir"
            )
        found = _fetch(spec, data_dir)
    source, paths = found
    # Key the cache on the source files' MD5s (directories: their .bin files' sizes and names).
    md5s = [_file_md5(p) if p.is_file() else _dir_key(p) for p in paths.values()]
    cache = _cache_path(spec.name, md5s)
    ds = _load_cached(cache, spec.name)
    if ds is not None:
        ds.source = source  # the same bytes may have moved (e.g. copied into a data_dir)
        return ds
    if spec.kind == "idx":
        tensors, status = _build_idx(spec, paths, md5s)
        classes = list(spec.classes)
    else:
        from .cifar import load_cifar

        path = next(iter(paths.values()))
        tensors, classes = load_cifar(spec, path)
        f = spec.files[0]
        if path.is_file():
            status = _verify(f, path, md5s[0], None)
        else:
            status = "not verified (extracted files; structure checked)"
    mean, std = channel_stats(tensors["train_images"])
    ds = ImageDataset(
        spec.name,
        tensors["train_images"],
        tensors["train_labels"],
        tensors["test_images"],
        tensors["test_labels"],
        classes,
        mean,
        std,
        source,
        status,
    )
    _save_cached(cache, ds)
    return ds


def _dir_key(d: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    for p in sorted(d.glob("*.bin")):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def load_dataset(
    name: str = DEFAULT_DATASET, data_dir: str | os.PathLike | None = None, download: bool = True
) -> ImageDataset:
    """Load a whole dataset into memory.

    ``name``: ``mnist``, ``fashion-mnist`` (default), ``kmnist``, ``cifar10``, ``cifar100`` or
    ``imagefolder:PATH`` (optionally ``imagefolder:PATH?size=64``). Files are looked for in ``data_dir``,
    the cache, system copies, then downloaded (if ``download``) with their published MD5s checked.
    """
    if name.lower().startswith("imagefolder:"):
        from .imagefolder import load_imagefolder

        return load_imagefolder(name.split(":", 1)[1])
    return _load_spec(get_spec(name), data_dir, download)
