"""CIFAR-10 / CIFAR-100 from the official *binary* archives (never the pickled "python version").

Record layout (https://www.cs.toronto.edu/~kriz/cifar.html, "Binary version"):

    CIFAR-10:  <1 byte label><3072 bytes pixels>               data_batch_1..5.bin, test_batch.bin
    CIFAR-100: <1 byte coarse label><1 byte fine label><3072>  train.bin, test.bin

The 3072 pixel bytes are 1024 red, 1024 green, 1024 blue, each 32×32 row-major — so a block of records
reshapes straight to (N, 3, 32, 32). Members are read from the tar.gz in memory; nothing is extracted to
disk (so no path-traversal risk) and only the expected regular files are touched.
"""

from __future__ import annotations

import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .sources import DatasetSpec, verify_md5

__all__ = ["CifarLayout", "LAYOUTS", "load_cifar", "load_cifar_dataset", "parse_records", "find_extracted"]

PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class CifarLayout:
    folder: str  # top folder inside the archive
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_bytes: int  # bytes before the pixels
    label_index: int  # which of them is the class (CIFAR-100: the fine label)
    names_file: str | None  # class names, one a line


LAYOUTS = {
    "cifar10": CifarLayout(
        "cifar-10-batches-bin",
        tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        ("test_batch.bin",),
        1,
        0,
        "batches.meta.txt",
    ),
    "cifar100": CifarLayout("cifar-100-binary", ("train.bin",), ("test.bin",), 2, 1, "fine_label_names.txt"),
}
MAX_MEMBER_BYTES = 512 << 20  # the largest real member (CIFAR-100 train.bin) is 153.7 MB


def parse_records(data: bytes, layout: CifarLayout, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-size records -> (images (N, 3, 32, 32) uint8, labels (N,) int64)."""
    record = layout.label_bytes + PIXELS
    if len(data) == 0 or len(data) % record:
        raise DataError(f"{source}: {len(data)} bytes is not a whole number of {record}-byte CIFAR records")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    labels = rows[:, layout.label_index].astype(np.int64)
    images = rows[:, layout.label_bytes :].reshape(-1, 3, 32, 32)
    return images, labels


def find_extracted(spec: DatasetSpec, d: Path) -> Path | None:
    """The folder holding an extracted archive's .bin files (``d`` itself or ``d/<folder>``)."""
    layout = LAYOUTS[spec.name]
    for cand in (d, d / layout.folder):
        if all((cand / n).is_file() for n in layout.train + layout.test):
            return cand
    return None


def _read_members(path: Path, layout: CifarLayout) -> dict[str, bytes]:
    wanted = {f"{layout.folder}/{n}" for n in (*layout.train, *layout.test)}
    if layout.names_file:
        wanted.add(f"{layout.folder}/{layout.names_file}")
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for m in tar:
                name = m.name.removeprefix("./")
                if name not in wanted:
                    continue
                if not m.isfile():
                    raise DataError(f"{path}: archive member {name} is not a regular file")
                if m.size > MAX_MEMBER_BYTES:
                    raise DataError(f"{path}: archive member {name} claims {m.size} bytes (too large)")
                data = tar.extractfile(m).read()
                if len(data) != m.size:
                    raise DataError(f"{path}: archive member {name} is truncated")
                out[name.rsplit("/", 1)[1]] = data
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path}: corrupt or truncated archive ({e or type(e).__name__})") from None
    return out


def _read_folder(d: Path, layout: CifarLayout) -> dict[str, bytes]:
    out = {}
    for n in (*layout.train, *layout.test, layout.names_file):
        p = d / n
        if p.is_file():
            if p.stat().st_size > MAX_MEMBER_BYTES:
                raise DataError(f"{p}: {p.stat().st_size} bytes is too large for a CIFAR batch file")
            out[n] = p.read_bytes()
    return out


def _class_names(spec: DatasetSpec, members: dict[str, bytes], layout: CifarLayout, source: str) -> list[str]:
    if spec.classes:
        return list(spec.classes)
    raw = members.get(layout.names_file)
    if raw is None:
        raise DataError(f"{source}: {layout.names_file} (the class names) is missing")
    return [line.strip() for line in raw.decode("ascii", "replace").splitlines() if line.strip()]


def load_cifar(spec: DatasetSpec, path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Parse an archive (file) or an extracted folder into the four tensors and the class names."""
    layout = LAYOUTS[spec.name]
    if path.is_file():
        members = _read_members(path, layout)
    else:
        folder = find_extracted(spec, path)
        if folder is None:
            raise DataError(f"{path}: no {layout.folder} batch files")
        members = _read_folder(folder, layout)
    tensors: dict[str, torch.Tensor] = {}
    classes = _class_names(spec, members, layout, str(path))
    for split, names in (("train", layout.train), ("test", layout.test)):
        images, labels = [], []
        for n in names:
            if n not in members:
                raise DataError(f"{path}: {layout.folder}/{n} is missing")
            im, lb = parse_records(members[n], layout, f"{path}:{n}")
            if lb.size and int(lb.max()) >= len(classes):
                raise DataError(f"{path}:{n}: label {int(lb.max())} out of range for {len(classes)} classes")
            images.append(im)
            labels.append(lb)
        tensors[f"{split}_images"] = torch.from_numpy(np.concatenate(images))  # (N, 3, 32, 32), contiguous
        tensors[f"{split}_labels"] = torch.from_numpy(np.concatenate(labels))
    return tensors, classes


def load_cifar_dataset(
    spec: DatasetSpec, paths: dict[str, Path], md5s: list[str]
) -> tuple[dict[str, torch.Tensor], list[str], str]:
    """(the four tensors, the class names, how the files were verified) from the archive or the folder of
    an extracted one."""
    path = next(iter(paths.values()))
    tensors, classes = load_cifar(spec, path)
    if path.is_file():
        status = verify_md5(spec.files[0], path, md5s[0], None)
    else:
        status = "not verified (extracted files; structure checked)"
    return tensors, classes, status
