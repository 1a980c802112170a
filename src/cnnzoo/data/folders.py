"""The files of an image folder and their labels, without opening one: what a streaming pipeline indexes.

Layouts (the first that matches):

    PATH/train/<class>/*  +  PATH/val/<class>/*           ImageNet's layout after the usual val re-sorting
    PATH/train/<class>/*  +  PATH/val/*  + a labels file   ImageNet as published: a flat val/ folder
    PATH/train/<class>/*  +  PATH/test/<class>/*          the in-memory loader's layouts (same splits:
    PATH/<class>/*                                         data/imagefolder.py), 90/10 per class, seeded

A flat ``val/`` takes its labels from the first of these files:

- ``PATH/LOC_val_solution.csv`` or ``PATH/val/LOC_val_solution.csv`` (Kaggle's ImageNet: a header
  ``ImageId,PredictionString``, then ``ILSVRC2012_val_00000001,n01751748 x0 y0 x1 y1 ...``: the first word
  is the class);
- ``PATH/val_labels.txt`` or ``PATH/val/labels.txt``: one ``FILENAME CLASS`` per line (``CLASS`` a class
  folder name of ``train/``, or its index in their sorted order; ``#`` starts a comment).

A file name without an extension matches the image of that stem (``ILSVRC2012_val_00000001.JPEG``).
Listing uses ``os.scandir`` (no ``stat`` per file: 1.28 M files list in seconds, on NFS too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..atomic import shown_path
from ..errors import DataError
from .imagefolder import EXTENSIONS, REFUSED_EXTENSIONS, ImageFolderConfig, collect_files

__all__ = ["FolderListing", "list_folder", "LABEL_FILES"]

LABEL_FILES = ("LOC_val_solution.csv", "val/LOC_val_solution.csv", "val_labels.txt", "val/labels.txt")
_LISTED = EXTENSIONS | REFUSED_EXTENSIONS  # a refused format is listed so that it is reported, not lost


@dataclass(frozen=True)
class FolderListing:
    root: Path
    classes: list[str]
    train: list[tuple[str, int]]  # (path, class index), sorted by class then name
    test: list[tuple[str, int]]  # the held-out set: val/ or test/ (or 10% of each class)
    layout: str  # a short description, for messages


def _files(d: Path) -> list[str]:
    with os.scandir(d) as it:
        found = [
            e.path
            for e in it
            if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in _LISTED and e.is_file()
        ]
    return sorted(found)


def _dirs(d: Path) -> list[str]:
    with os.scandir(d) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def _by_class(d: Path, classes: list[str]) -> list[tuple[str, int]]:
    return [(p, i) for i, c in enumerate(classes) if (d / c).is_dir() for p in _files(d / c)]


def _label_file(root: Path) -> Path | None:
    return next((root / f for f in LABEL_FILES if (root / f).is_file()), None)


def _flat_val(root: Path, classes: list[str]) -> list[tuple[str, int]]:
    """``val/*`` labelled by a labels file (see the module's docstring)."""
    val = root / "val"
    labels_path = _label_file(root)
    files = _files(val)
    if labels_path is None:
        raise DataError(
            f"imagefolder: {val} holds images but no class folders and no labels file "
            f"(looked for {', '.join(LABEL_FILES)} in {root})"
        )
    index = {c: i for i, c in enumerate(classes)}
    by_name = {os.path.basename(p): p for p in files} | {
        os.path.splitext(os.path.basename(p))[0]: p for p in files
    }
    out: dict[str, int] = {}
    csv = labels_path.suffix == ".csv"
    for n, line in enumerate(labels_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = line.split("#", 1)[0].strip() if not csv else line.strip()
        if not line or (csv and n == 1 and line.lower().startswith("imageid")):
            continue
        parts = line.replace(",", " ", 1).split() if csv else line.split()
        if len(parts) < 2:
            raise DataError(f"{labels_path}:{n}: expected 'FILENAME CLASS', got {line[:80]!r}")
        name, label = parts[0], parts[1]
        cls = index.get(label)
        if cls is None and label.isdigit() and int(label) < len(classes):
            cls = int(label)
        if cls is None:
            raise DataError(f"{labels_path}:{n}: {label[:40]!r} is not a class of {root / 'train'}")
        path = by_name.get(name) or by_name.get(os.path.splitext(name)[0])
        if path is None:
            raise DataError(f"{labels_path}:{n}: no image {name[:80]!r} in {val}")
        out[path] = cls
    unlabelled = sorted(set(files) - set(out))
    if unlabelled:
        raise DataError(f"{unlabelled[0]}: no label in {labels_path} ({len(unlabelled)} unlabelled image(s))")
    return sorted(out.items())


def _check(listing: FolderListing) -> FolderListing:
    """The clear errors: fewer than two classes, a class without training images."""
    root = listing.root
    if len(listing.classes) < 2:
        what = f"only one class ({listing.classes[0]!r})" if listing.classes else "no class folders"
        raise DataError(
            f"imagefolder: {root} has {what}: a classifier needs at least two class folders "
            f"(PATH/<class>/*.jpg or PATH/train/<class>/*.jpg)"
        )
    counts = [0] * len(listing.classes)
    for _, c in listing.train:
        counts[c] += 1
    empty = [c for c, n in zip(listing.classes, counts, strict=True) if n == 0]
    if empty:
        raise DataError(
            f"imagefolder: class folder {empty[0]!r} of {root} has no training images "
            f"({len(empty)} empty class folder(s)); remove it or add images"
        )
    return listing


def list_folder(root: str | os.PathLike) -> FolderListing:
    """Every image file of the folder ``root`` with its class, in one of the layouts above."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"imagefolder: {root} is not a directory")
    train_dir, val_dir = root / "train", root / "val"
    if train_dir.is_dir() and val_dir.is_dir():
        classes = _dirs(train_dir)
        train = _by_class(train_dir, classes)
        val_classes = _dirs(val_dir)
        extra = sorted(set(val_classes) - set(classes))
        if extra:
            raise DataError(f"{val_dir}: classes {extra[:5]} have no training folder in {train_dir}")
        shown = [
            shown_path(c) for c in classes
        ]  # the labels: a name that is not UTF-8 shows its bytes as \xNN
        if val_classes:
            return _check(
                FolderListing(root, shown, train, _by_class(val_dir, classes), "train/ + val/<class>/")
            )
        return _check(
            FolderListing(root, shown, train, _flat_val(root, classes), "train/ + flat val/ + labels")
        )
    classes, train, test = collect_files(ImageFolderConfig(root))
    pairs = [[(str(p), c) for p, c in part] for part in (train, test)]
    layout = "train/ + test/" if (root / "test").is_dir() and train_dir.is_dir() else "class folders, 90/10"
    return _check(FolderListing(root, classes, pairs[0], pairs[1], layout))
