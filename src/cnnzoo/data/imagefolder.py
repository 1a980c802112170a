"""``imagefolder:PATH`` — your own images, one sub-folder per class.

Layouts:

    PATH/train/<class>/*.png  +  PATH/test/<class>/*.png     explicit split
    PATH/<class>/*.png                                       split 90/10 per class, seeded (deterministic)

Every image is read by the one guarded decoder (:mod:`cnnzoo.images`: PNG, JPEG, BMP, GIF or WebP, with its
pixel cap against decompression bombs), converted to grey when all images are grey and to RGB otherwise, and resized to one size: ``size`` if given (the
``imagefolder:PATH?size=64`` form), else the most common size in the folder.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import shown_path
from ..errors import DataError
from ..images import IMAGE_EXTENSIONS, decode_image, open_image
from .types import ImageDataset, channel_stats

__all__ = ["ImageFolderConfig", "load_imagefolder", "parse_imagefolder_name"]

EXTENSIONS = set(IMAGE_EXTENSIONS)
# Files in formats the decoder refuses: listed so that the folder's loading names them rather than skip
# them silently (a TIFF would otherwise vanish from its class).
REFUSED_EXTENSIONS = {".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".jp2", ".ico", ".tga", ".pcx", ".sgi"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


@dataclass(frozen=True)
class ImageFolderConfig:
    root: Path
    size: tuple[int, int] | None = None  # (H, W); None = the most common size
    test_fraction: float = 0.1  # for the single-folder layout
    seed: int = 0


MAX_SIDE = 1024  # size=N's range: a 99999×99999 request would ask for hundreds of GiB


def parse_imagefolder_name(spec: str) -> ImageFolderConfig:
    """``PATH`` or ``PATH?size=64`` / ``PATH?size=32x48`` (H x W)."""
    path, _, query = spec.partition("?")
    size = None
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        if key != "size":
            raise DataError(f"imagefolder:{spec}: unknown option {key!r} (only size=N or size=HxW)")
        try:
            dims = [int(v) for v in value.lower().split("x")]
        except ValueError:
            dims = []
        if len(dims) not in (1, 2) or min(dims) < 1:
            raise DataError(f"imagefolder:{spec}: bad size {value!r} (use size=64 or size=32x48)")
        if max(dims) > MAX_SIDE:
            raise DataError(f"imagefolder:{spec}: size {value!r} is out of range: each side is 1..{MAX_SIDE}")
        size = (dims[0], dims[-1])
    return ImageFolderConfig(Path(path).expanduser(), size)


def _class_dirs(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(d: Path) -> list[Path]:
    return sorted(
        p for p in d.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS | REFUSED_EXTENSIONS
    )


def collect_files(cfg: ImageFolderConfig) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, int]]]:
    """(classes, train files, test files) of a folder: the one listing both the in-memory loader and the
    stream (data/folders.py) use, so a folder splits the same way either way."""
    root = cfg.root
    if not root.is_dir():
        raise DataError(f"imagefolder: {root} is not a directory")
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() and test_dir.is_dir():
        classes = [p.name for p in _class_dirs(train_dir)]
        extra = sorted({p.name for p in _class_dirs(test_dir)} - set(classes))
        if extra:
            raise DataError(f"{test_dir}: classes {extra} have no training folder in {train_dir}")
        train = [(p, i) for i, c in enumerate(classes) for p in _images_in(train_dir / c)]
        test = [
            (p, i) for i, c in enumerate(classes) if (test_dir / c).is_dir() for p in _images_in(test_dir / c)
        ]
    else:
        classes = [p.name for p in _class_dirs(root)]
        rng = np.random.default_rng(cfg.seed)
        train, test = [], []
        for i, c in enumerate(classes):  # split each class separately so both splits see every class
            files = _images_in(root / c)
            order = rng.permutation(len(files))
            n_test = int(round(len(files) * cfg.test_fraction)) if len(files) > 1 else 0
            test += [(files[j], i) for j in sorted(order[:n_test])]
            train += [(files[j], i) for j in sorted(order[n_test:])]
    if not classes:
        raise DataError(f"imagefolder: {root} has no class sub-folders (expected {root}/<class>/*.png)")
    if not train:
        raise DataError(f"imagefolder: no images ({', '.join(sorted(EXTENSIONS))}) under {root}")
    return [shown_path(c) for c in classes], train, test  # a name that is not UTF-8 shows its bytes as \xNN


def _decode(
    items: list[tuple[Path, int]], size_hw: tuple[int, int], mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    c = 1 if mode == "L" else 3
    h, w = size_hw
    images = np.empty((len(items), c, h, w), dtype=np.uint8)
    labels = np.empty(len(items), dtype=np.int64)
    for k, (path, label) in enumerate(items):
        with decode_image(path) as img:
            img = img.convert(mode)
            if img.size != (w, h):
                img = img.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)  # (H, W) or (H, W, 3)
        images[k] = arr[None] if c == 1 else arr.transpose(2, 0, 1)
        labels[k] = label
    return torch.from_numpy(images), torch.from_numpy(labels)


def load_imagefolder(spec: str | ImageFolderConfig) -> ImageDataset:
    """Load an image folder into an :class:`ImageDataset` (uint8 N×C×H×W, all one size)."""
    cfg = spec if isinstance(spec, ImageFolderConfig) else parse_imagefolder_name(spec)
    classes, train, test = collect_files(cfg)
    sizes, grey = Counter(), True
    for path, _ in train + test:  # headers only: Pillow opens lazily
        with open_image(path) as img:
            sizes[(img.height, img.width)] += 1
            grey = grey and img.mode in GREY_MODES
    size = cfg.size or sizes.most_common(1)[0][0]
    mode = "L" if grey else "RGB"
    train_x, train_y = _decode(train, size, mode)
    test_x, test_y = _decode(test, size, mode)
    mean, std = channel_stats(train_x)
    return ImageDataset(
        f"imagefolder:{cfg.root}",
        train_x,
        train_y,
        test_x,
        test_y,
        classes,
        mean,
        std,
        f"imagefolder: {cfg.root}",
        "not applicable (your own files)",
    )
