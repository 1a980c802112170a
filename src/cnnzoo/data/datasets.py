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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .cifar import find_extracted, load_cifar_dataset
from .download import download_file
from .imagefolder import load_imagefolder
from .mnist import load_idx_dataset
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
from .types import ImageDataset, channel_stats

__all__ = ["ImageDataset", "load_dataset", "channel_stats", "locate", "LOADERS", "DEFAULT_DATASET"]

CACHE_VERSION = "1"  # bump when the cached tensor layout changes


@dataclass(frozen=True)
class Loader:
    """How to read one file format: ``load(spec, {filename: path}, md5s) -> (tensors, classes, status)``,
    and optionally where an already extracted copy sits (``find_extracted(spec, directory)``)."""

    load: Callable[[DatasetSpec, dict[str, Path], list[str]], tuple[dict, list[str], str]]
    find_extracted: Callable[[DatasetSpec, Path], Path | None] | None = None


# DatasetSpec.kind -> its loader. A new file format is one module and one entry here.
LOADERS = {
    "idx": Loader(load_idx_dataset),
    "cifar": Loader(load_cifar_dataset, find_extracted),
}


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
    find_extracted = LOADERS[spec.kind].find_extracted
    if find_extracted is not None:  # a user's extracted archive, e.g. data_dir/cifar-10-batches-bin/*.bin
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
    tensors, classes, status = LOADERS[spec.kind].load(spec, paths, md5s)
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
        return load_imagefolder(name.split(":", 1)[1])
    return _load_spec(get_spec(name), data_dir, download)
