"""The streaming input pipeline for image folders (cnnzoo.data.stream): layouts, decoding, bad
files, rank shares, resume, the CLI and torchrun. Small generated folders: 200 JPEGs of 64×64."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.cli import main as cli_main
from cnnzoo.data import stream as stream_mod
from cnnzoo.data.decode import crop_rng, decode_file, eval_crop, train_crop
from cnnzoo.data.folders import list_folder
from cnnzoo.data.stream import FolderStream, StreamTrain, load_for_training, train_sampler
from cnnzoo.errors import DataError

CLASSES = ("ant", "bee", "cat", "dog")


def _jpeg(rng, c: int, size: int = 64) -> bytes:
    img = np.zeros((size, size, 3), np.uint8)
    img[..., c % 3] = 170
    img[: size // 2 * (c // 3 + 1) // 2] += 60  # classes 0-2 by colour, 3 by a bright top
    img = np.clip(img + rng.integers(0, 50, img.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def make_folder(root: Path, per_class: int = 50, layout: str = "flat") -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            part = "" if layout == "flat" else ("val/" if i % 5 == 0 else "train/")
            d = root / part / name
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{name}_{i:03d}.jpg").write_bytes(_jpeg(rng, c))
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("stream") / "photos")


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory) -> Path:
    root = make_folder(tmp_path_factory.mktemp("bad") / "photos", per_class=25)
    good = (root / "ant" / "ant_001.jpg").read_bytes()
    (root / "ant" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "bee" / "empty.jpg").write_bytes(b"")
    return root


# ------------------------------------------------------------------ layouts


def test_layouts_single_folder_matches_the_in_memory_split(folder):
    listing = list_folder(folder)
    assert listing.classes == list(CLASSES)
    assert len(listing.train) == 180 and len(listing.test) == 20  # 90/10 per class, as data/imagefolder.py
    ds = cnnzoo.load_dataset(f"imagefolder:{folder}")
    assert ds.test_labels.tolist() == [c for _, c in listing.test]


def test_layouts_imagenet_train_val(tmp_path):
    root = make_folder(tmp_path / "inet", per_class=5, layout="imagenet")
    listing = list_folder(root)
    assert listing.layout == "train/ + val/<class>/"
    assert (len(listing.train), len(listing.test)) == (16, 4)
    # the published flat val/ with Kaggle's LOC_val_solution.csv (first word of PredictionString)
    flat = tmp_path / "flat"
    (flat / "train").mkdir(parents=True)
    for name in CLASSES:
        (root / "train" / name).rename(flat / "train" / name)
    (flat / "val").mkdir()
    rows = ["ImageId,PredictionString"]
    for k, (path, c) in enumerate(listing.test):
        Path(path).rename(flat / "val" / f"ILSVRC2012_val_{k:08d}.JPEG")
        rows.append(f"ILSVRC2012_val_{k:08d},{CLASSES[c]} 1 2 30 40 {CLASSES[c]} 5 6 7 8")
    (flat / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    got = list_folder(flat)
    assert got.layout == "train/ + flat val/ + labels"
    assert [c for _, c in got.test] == [c for _, c in listing.test]
    # the plain "FILENAME CLASS" file (a class name or its index)
    (flat / "LOC_val_solution.csv").unlink()
    lines = [
        f"ILSVRC2012_val_{k:08d}.JPEG {CLASSES[c] if k % 2 else c}" for k, (_, c) in enumerate(listing.test)
    ]
    (flat / "val_labels.txt").write_text("# file class\n" + "\n".join(lines) + "\n")
    assert [c for _, c in list_folder(flat).test] == [c for _, c in listing.test]
    (flat / "val_labels.txt").write_text("ILSVRC2012_val_00000000.JPEG zebra\n")
    with pytest.raises(DataError, match="val_labels.txt:1: 'zebra' is not a class"):
        list_folder(flat)


def test_one_class_or_an_empty_class_is_a_clear_error(tmp_path):
    one = make_folder(tmp_path / "one", per_class=3)
    for name in CLASSES[1:]:
        for f in (one / name).iterdir():
            f.unlink()
        (one / name).rmdir()
    with pytest.raises(DataError, match="only one class \\('ant'\\)"):
        list_folder(one)
    empty = make_folder(tmp_path / "empty", per_class=3)
    (empty / "eel").mkdir()
    with pytest.raises(DataError, match="class folder 'eel' .* has no training images"):
        list_folder(empty)


# ------------------------------------------------------------------ decoding


def test_decoding_converts_cmyk_and_16_bit_and_names_bad_files(tmp_path):
    rgb = (np.arange(40 * 30 * 3) % 251).astype(np.uint8).reshape(40, 30, 3)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", "JPEG")
    t = decode_file(str(tmp_path / "cmyk.jpg"), 3)
    assert t.shape == (3, 40, 30) and t.dtype == torch.uint8
    deep = (np.arange(20 * 24) * 130).astype(np.uint16).reshape(20, 24)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    t = decode_file(str(tmp_path / "deep.png"), 1)
    assert t.dtype == torch.uint8 and t.shape == (1, 20, 24)
    assert int(t.max()) == int(deep.max()) // 257  # scaled, not clipped at 255
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="empty.jpg: the file is empty"):
        decode_file(str(tmp_path / "empty.jpg"), 3)
    good = (tmp_path / "cmyk.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[:200])
    with pytest.raises(DataError, match="cut.jpg: (corrupt or truncated|cannot read)"):
        decode_file(str(tmp_path / "cut.jpg"), 3)


def test_crops_have_the_size_and_repeat_from_their_seed():
    img = torch.randint(0, 256, (3, 90, 120), dtype=torch.uint8)
    a = train_crop(img, (32, 40), crop_rng(0, 3, 17), hflip=True)
    assert a.shape == (3, 32, 40) and a.dtype == torch.uint8
    assert torch.equal(a, train_crop(img, (32, 40), crop_rng(0, 3, 17), hflip=True))
    assert not torch.equal(a, train_crop(img, (32, 40), crop_rng(0, 4, 17), hflip=True))
    assert eval_crop(img, (32, 32)).shape == (3, 32, 32)


# ------------------------------------------------------------------ ranks, choice, worker crashes


def test_each_rank_reads_a_disjoint_share_of_every_epoch():
    n = 203
    for epoch in range(3):
        shares = []
        for rank in range(2):
            sampler = train_sampler(n, rank, 2, seed=5)
            sampler.set_epoch(epoch)
            shares.append(list(sampler))
        assert len(shares[0]) == len(shares[1]) == n // 2  # the same number of steps on every rank
        assert not set(shares[0]) & set(shares[1])
        assert len(set(shares[0]) | set(shares[1])) == n - 1  # one image left over, dropped this epoch
    again = train_sampler(n, 0, 2, seed=5)
    again.set_epoch(2)
    assert list(again) == shares[0]  # an epoch's share is a function of (seed, epoch): exact resume


def test_the_stream_is_chosen_when_the_folder_would_not_fit(folder, monkeypatch):
    monkeypatch.setattr(stream_mod, "available_memory", lambda: 1 << 20)  # 1 MB free: 200×64×64×3 > 25%
    s = load_for_training(f"imagefolder:{folder}")
    assert isinstance(s, FolderStream) and "more than 25%" in s.reason and s.channels == 3
    monkeypatch.setattr(stream_mod, "available_memory", lambda: 1 << 40)
    assert not isinstance(load_for_training(f"imagefolder:{folder}"), FolderStream)
    assert not isinstance(load_for_training(f"imagefolder:{folder}", stream=False), FolderStream)
    with pytest.raises(DataError, match="--stream reads image folders"):
        load_for_training("mnist", stream=True)


def _die(self, key):
    os._exit(3)


def test_a_dead_worker_stops_the_run_with_one_line(folder, monkeypatch):
    s = load_for_training(f"imagefolder:{folder}", stream=True)
    source = StreamTrain(s, s.listing.train, (32, 32), 8, 0, 1, 0, True, 1, torch.device("cpu"))
    monkeypatch.setattr(stream_mod._Images, "__getitem__", _die)
    with pytest.raises(DataError, match="a data-loading worker process died") as e:
        next(iter(source.epoch(0)))
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ training


def _fit(s, out, resume=False, workers=0, on_epoch=None):
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5_modern", num_classes=4, in_channels=3)
    return cnnzoo.fit(
        model,
        s,
        epochs=2,
        batch_size=32,
        lr=0.05,
        out=str(out),
        resume=resume,
        workers=workers,
        progress="quiet",
        threads=1,
        on_epoch=on_epoch,
    )


def _crash(record):
    if record["epoch"] == 1:
        raise KeyboardInterrupt("simulated crash right after epoch 1's checkpoint")


def test_resume_at_an_epoch_boundary_gives_the_uninterrupted_numbers(folder, tmp_path):
    s = load_for_training(f"imagefolder:{folder}", stream=True)
    whole = _fit(s, tmp_path / "whole", workers=2)
    with pytest.raises(KeyboardInterrupt):
        _fit(s, tmp_path / "part", on_epoch=_crash)  # in-process decoding: a crop is the same in any worker
    resumed = _fit(s, tmp_path / "part", resume=True, workers=1)
    drop = ("seconds", "images_per_second")
    assert [{k: v for k, v in r.items() if k not in drop} for r in resumed.epochs] == [
        {k: v for k, v in r.items() if k not in drop} for r in whole.epochs
    ]
    assert resumed.result["test_accuracy"] == whole.result["test_accuracy"]
    assert whole.result["stream"] is True and whole.result["skipped_files"] == 0


def test_cli_skips_and_reports_bad_files_and_strict_fails_naming_one(bad_folder, tmp_path, capsys):
    # a validation split: it reads every one of its files each epoch, where training drops its incomplete last
    # batch, which may hold the bad files (lenet5_modern's recipe has no validation split)
    fixed = (
        "train lenet5_modern --stream --input 3x32x32 --epochs 1 --batch-size 16 "
        "--validation-split 0.1 --workers 1 --threads 1 --quiet"
    ).split()
    args = [*fixed, "--dataset", f"imagefolder:{bad_folder}"]
    assert cli_main([*args, "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == 2, err
    assert any("truncated.jpg: corrupt or truncated" in w for w in warnings)
    assert any("empty.jpg: the file is empty" in w for w in warnings)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["skipped_files"] == 2 and result["stream"] is True
    assert cli_main([*args, "--strict", "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cnnzoo train: error: ") and ".jpg: " in err[0], err


@pytest.mark.slow
def test_torchrun_two_ranks_stream_and_write_one_result(folder, tmp_path):
    out = tmp_path / "ddp"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    fixed = (
        "-m cnnzoo train lenet5_modern --stream --input 3x32x32 --epochs 1 "
        "--batch-size 32 --workers 0 --nproc 2 --quiet"
    ).split()
    cmd = [sys.executable, *fixed, "--dataset", f"imagefolder:{folder}", "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2 and result["stream"] is True
    # both ranks' images together: floor(162 / 2) per rank, whole local batches of 16 -> 5 steps × 32
    assert result["final"]["images"] == 160
    assert len(list(out.glob("result*.json"))) == 1
