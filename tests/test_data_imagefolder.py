"""Image folders as datasets (``imagefolder:PATH``): one folder split 90/10 per class, train/test layouts,
resizing, grey images, and each bad input (unreadable or refused formats, too many pixels, a bad size) a
one-line DataError naming the file. The images are PNGs and TIFFs the tests write with PIL."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnzoo.data import load_dataset
from cnnzoo.errors import DataError


def _png(path: Path, size, color, mode="RGB"):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def test_imagefolder_single_folder_split_and_resize(tmp_path):
    for c, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        for i in range(10):
            _png(tmp_path / c / f"{i}.png", (12, 8) if i else (20, 20), color)  # W x H; one odd size
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.classes == ["cat", "dog"]
    assert ds.train_images.shape == (18, 3, 8, 12) and ds.test_images.shape == (
        2,
        3,
        8,
        12,
    )  # 90/10 per class
    assert ds.test_labels.sort().values.tolist() == [0, 1]
    cat = ds.train_images[ds.train_labels == 0]
    assert (cat[:, 0] == 255).all() and (cat[:, 2] == 0).all()  # red stays red after resize
    assert ds.mean == pytest.approx((0.5, 0.0, 0.5))
    again = load_dataset(f"imagefolder:{tmp_path}")  # deterministic split
    assert torch.equal(again.test_labels, ds.test_labels) and torch.equal(again.test_images, ds.test_images)
    sized = load_dataset(f"imagefolder:{tmp_path}?size=16")
    assert sized.train_images.shape[1:] == (3, 16, 16)


def test_imagefolder_train_test_layout_grey(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for c in ("a", "b", "c"):
            for i in range(n):
                _png(tmp_path / split / c / f"{i}.png", (5, 5), 100, mode="L")
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.train_images.shape == (9, 1, 5, 5) and ds.test_images.shape == (6, 1, 5, 5)
    assert ds.mean[0] == pytest.approx(100 / 255)


def test_imagefolder_errors(tmp_path):
    _png(tmp_path / "ok" / "a" / "1.png", (4, 4), (0, 0, 0))
    (tmp_path / "ok" / "a" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match=r"2.png: unreadable image") as e:
        load_dataset(f"imagefolder:{tmp_path / 'ok'}")
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match=r"is not a directory"):
        load_dataset(f"imagefolder:{tmp_path / 'missing'}")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no images"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match=r"bad size"):
        load_dataset(f"imagefolder:{tmp_path / 'ok'}?size=big")


def test_imagefolder_pixel_guard(tmp_path, monkeypatch):
    import cnnzoo.images

    _png(tmp_path / "a" / "big.png", (300, 200), (1, 2, 3))
    monkeypatch.setattr(cnnzoo.images, "MAX_PIXELS", 50_000)  # the one decoder's cap, for every reader
    with pytest.raises(DataError, match=r"big.png: image is 300×200 = 60,000 pixels, more than the limit"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_imagefolder_names_files_in_refused_formats(tmp_path):
    from PIL import Image

    _png(tmp_path / "a" / "1.png", (8, 8), (0, 0, 0))
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "2.tif", "TIFF")
    with pytest.raises(DataError, match=r"2.tif: unreadable image: not an image cnnzoo can read"):
        load_dataset(f"imagefolder:{tmp_path}")
