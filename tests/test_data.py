"""Datasets: the IDX reader on the real Fashion-MNIST, small MNIST/KMNIST/CIFAR files the tests
write (with writers independent of the readers), and every bad input giving a one-line DataError."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FASHION_CLASSES

from cnnzoo.cli import main
from cnnzoo.data import DEFAULT_DATASET, load_dataset, read_idx
from cnnzoo.errors import ChecksumError, DataError

SYSTEM = Path("/usr/share/datasets/fashion-mnist")
needs_system = pytest.mark.skipif(not SYSTEM.is_dir(), reason="Debian's dataset-fashion-mnist not installed")

# REFERENCE.md: MD5 of the decompressed files (Debian re-gzipped them) and Fashion-MNIST's class names
FASHION_RAW_MD5 = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's ~/.cache, never reach the network."""
    monkeypatch.setenv("CNNZOO_DATA", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("CNNZOO_MIRROR", "http://127.0.0.1:9/")  # discard port: downloads fail fast


# ---------------------------------------------------------------- writers (the format, by hand)


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1" if code == 0x08 else array.dtype.newbyteorder(">")).tobytes()


def write_mnist_like(d: Path, n_train=20, n_test=8, gz=False, seed=0, n_classes=10) -> dict:
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    data = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, n_classes, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, n_classes, n_test, dtype=np.uint8),
    }
    for name, arr in data.items():
        raw = idx_bytes(arr)
        (d / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    return data


# ---------------------------------------------------------------- the real Fashion-MNIST


@needs_system
def test_idx_reader_on_real_fashion_mnist_labels_and_checksums():
    for name, md5 in FASHION_RAW_MD5.items():
        if "labels" in name:
            idx = read_idx(SYSTEM / name)
            assert idx.md5 == md5
            assert idx.array.shape == ((60000,) if name.startswith("train") else (10000,))
            assert np.bincount(idx.array).tolist() == [6000 if name.startswith("train") else 1000] * 10


@needs_system
def test_load_real_fashion_mnist(tmp_path):
    ds = load_dataset("fashion-mnist", download=False)
    assert DEFAULT_DATASET == "fashion-mnist"
    assert ds.train_images.shape == (60000, 1, 28, 28) and ds.test_images.shape == (10000, 1, 28, 28)
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64
    assert ds.train_images.is_contiguous() and ds.test_images.is_contiguous()
    assert ds.classes == FASHION_CLASSES
    assert ds.source == f"system: {SYSTEM}"
    assert ds.checksum == "verified (decompressed bytes)"  # all four decompressed MD5s matched REFERENCE.md
    # The widely published Fashion-MNIST normalisation constants (0.2860, 0.3530)
    assert ds.mean[0] == pytest.approx(0.2860, abs=1e-4) and ds.std[0] == pytest.approx(0.3530, abs=1e-4)
    # independent of the histogram shortcut: float64 mean over a slice vs the same slice's stats
    sample = ds.train_images[:2000].double() / 255
    assert sample.mean().item() == pytest.approx(ds.mean[0], abs=0.01)
    # the first training labels of the published file: ankle boot, T-shirt, T-shirt, dress, ...
    assert ds.train_labels[:6].tolist() == [9, 0, 0, 3, 0, 2]
    # torchvision's own IDX parser agrees on the bytes (it wants an uncompressed file)
    from torchvision.datasets.mnist import read_image_file

    raw = tmp_path / "t10k-images-idx3-ubyte"
    raw.write_bytes(gzip.decompress((SYSTEM / "t10k-images-idx3-ubyte.gz").read_bytes()))
    assert raw.stat().st_size == 7_840_016  # REFERENCE.md
    assert torch.equal(read_image_file(str(raw)), ds.test_images[:, 0])

    # warm: the parsed tensors come from the safetensors cache, fast
    import time

    t = time.perf_counter()
    again = load_dataset("fashion-mnist", download=False)
    assert time.perf_counter() - t < 2.0  # < 1 s on an idle machine; slack for a loaded CI box
    assert torch.equal(again.test_images, ds.test_images) and again.checksum == ds.checksum


# ---------------------------------------------------------------- small MNIST / KMNIST files


@pytest.mark.parametrize("name", ["mnist", "kmnist"])
def test_user_brought_raw_idx_files(tmp_path, name):
    data = write_mnist_like(tmp_path / "mine", n_train=30, n_test=7)
    ds = load_dataset(name, data_dir=tmp_path / "mine", download=False)
    assert ds.train_images.shape == (30, 1, 28, 28) and ds.test_images.shape == (7, 1, 28, 28)
    assert np.array_equal(ds.train_images[:, 0].numpy(), data["train-images-idx3-ubyte"])
    assert ds.test_labels.tolist() == data["t10k-labels-idx1-ubyte"].tolist()
    pixels = data["train-images-idx3-ubyte"].astype(np.float64) / 255
    assert ds.mean[0] == pytest.approx(pixels.mean()) and ds.std[0] == pytest.approx(pixels.std())
    assert ds.checksum.startswith("not verified")  # no published MD5 for decompressed MNIST/KMNIST files
    assert ds.classes == (
        ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
        if name == "kmnist"
        else [f"{i} - {w}" for i, w in enumerate("zero one two three four five six seven eight nine".split())]
    )


def test_fashion_mnist_decompressed_checksum_mismatch(tmp_path):
    # Fashion-MNIST's decompressed MD5s are known, so random files under its names are refused
    write_mnist_like(tmp_path / "fm")
    with pytest.raises(ChecksumError) as e:
        load_dataset("fashion-mnist", data_dir=tmp_path / "fm", download=False)
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and "f4a8712d7a061bf5bd6d2ca38dc4d50a" in msg and "\n" not in msg


def test_torchvision_layout_and_gz_checksum_mismatch(tmp_path):
    # torchvision's root/MNIST/raw layout is found; published .gz names with other bytes are refused
    write_mnist_like(tmp_path / "MNIST" / "raw", gz=True)
    with pytest.raises(ChecksumError) as e:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    msg = str(e.value)
    assert "\n" not in msg and "train-images-idx3-ubyte.gz" in msg
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in msg  # REFERENCE.md's published MD5, and the actual one
    actual = hashlib.md5((tmp_path / "MNIST/raw/train-images-idx3-ubyte.gz").read_bytes()).hexdigest()
    assert actual in msg


def test_count_mismatch_and_label_range(tmp_path):
    data = write_mnist_like(tmp_path / "a", n_train=10)
    (tmp_path / "a/train-labels-idx1-ubyte").write_bytes(idx_bytes(data["train-labels-idx1-ubyte"][:9]))
    with pytest.raises(DataError, match=r"10 images but train-labels-idx1-ubyte has 9 labels"):
        load_dataset("mnist", data_dir=tmp_path / "a", download=False)
    write_mnist_like(tmp_path / "b", n_classes=12, seed=3)
    with pytest.raises(DataError, match=r"label 1[01] out of range for 10 classes"):
        load_dataset("kmnist", data_dir=tmp_path / "b", download=False)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DataError, match=r"kmnist: files not found"):
        load_dataset("kmnist", data_dir=tmp_path, download=False)


# ---------------------------------------------------------------- IDX reader: bad inputs


def test_idx_reader_roundtrip_dtypes(tmp_path):
    for code, dtype in ((0x08, np.uint8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32)):
        arr = (np.arange(24).reshape(2, 3, 4) * 7 - 20).astype(dtype)
        if code == 0x08:
            arr = np.abs(arr).astype(np.uint8)
        p = tmp_path / f"x{code}.idx"
        p.write_bytes(idx_bytes(arr, code))
        got = read_idx(p).array
        assert got.dtype == np.dtype(dtype).newbyteorder("=") and np.array_equal(got, arr)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b"\x01" + b[1:], r"not an IDX file \(magic number 01000803"),
        (lambda b: b[:2] + b"\x07" + b[3:], r"unknown IDX dtype code 0x07"),
        (lambda b: b[:3] + b"\x09" + b[4:], r"claims 9 dimensions"),
        (lambda b: b[:-5], r"header shape \(3, 28, 28\) needs 2352 data bytes but the file has 2347"),
        (lambda b: b + b"\0", r"needs 2352 data bytes but the file has 2353"),
        (lambda b: b[:4] + struct.pack(">I", 4) + b[8:], r"needs 3136 data bytes but the file has 2352"),
        (lambda b: b[:6], r"truncated IDX file \(dimension sizes"),
        (lambda b: b"", r"truncated IDX file \(magic number"),
    ],
)
def test_idx_reader_rejects_bad_raw_files(tmp_path, mutate, message):
    good = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    p = tmp_path / "bad-images-idx3-ubyte"
    p.write_bytes(mutate(good))
    with pytest.raises(DataError, match=message) as e:
        read_idx(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_idx_reader_rejects_bad_gz_files(tmp_path):
    good = idx_bytes(np.arange(600, dtype=np.uint8).reshape(6, 10, 10))
    gz = gzip.compress(good)
    cases = {
        "truncated.gz": (gz[: len(gz) // 2], r"corrupt gzip stream|truncated"),
        "short.gz": (gzip.compress(good[:-50]), r"truncated IDX data \(header shape \(6, 10, 10\) needs 600"),
        "garbage.gz": (gzip.compress(b"hello world, not idx"), r"not an IDX file"),
        "crc.gz": (gz[:-8] + b"\0\0\0\0" + gz[-4:], r"corrupt gzip stream"),
        # a header claiming 4G x 28 x 28 bytes in a 60-byte .gz: refused before allocating
        "huge.gz": (
            gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 28, 28)),
            r"more than a \d+-byte gzip file can hold",
        ),
    }
    for name, (blob, message) in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        with pytest.raises(DataError, match=message) as e:
            read_idx(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value)
    p = tmp_path / "ok.gz"
    p.write_bytes(gz)
    assert read_idx(p).md5 == hashlib.md5(good).hexdigest()


def test_truncated_system_copy_gz_is_a_data_error(tmp_path):
    # a user's copy of Debian's file, cut short: the load names the file, never a gzip traceback
    src = SYSTEM / "t10k-labels-idx1-ubyte.gz"
    if not src.exists():
        pytest.skip("no system copy")
    d = tmp_path / "fm"
    d.mkdir()
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (d / f).write_bytes(idx_bytes(np.zeros((2, 28, 28) if "images" in f else (2,), np.uint8)))
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(src.read_bytes()[:2000])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: (corrupt gzip stream|truncated)"):
        load_dataset("fashion-mnist", data_dir=d, download=False)


# ---------------------------------------------------------------- CIFAR binary


def cifar_records(n, label_bytes, rng, n_classes):
    labels = rng.integers(0, n_classes, (n, label_bytes), dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    blob = b"".join(labels[i].tobytes() + pixels[i].tobytes() for i in range(n))  # one record at a time
    return blob, labels, pixels


def write_cifar10(path: Path, rng, per_batch=4, corrupt=None):
    members, truth = {}, {"train": [], "test": []}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        blob, labels, pixels = cifar_records(per_batch, 1, rng, 10)
        truth["test" if name.startswith("test") else "train"].append((labels[:, 0], pixels))
        members[f"cifar-10-batches-bin/{name}"] = blob
    members["cifar-10-batches-bin/batches.meta.txt"] = b"airplane\nautomobile\n"
    if corrupt:
        members.update(corrupt(members))
    _write_tar(path, members)
    return truth


def _write_tar(path: Path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_cifar10_binary_archive_checksum_and_parse(tmp_path):
    rng = np.random.default_rng(1)
    truth = write_cifar10(tmp_path / "cifar-10-binary.tar.gz", rng)
    with pytest.raises(
        ChecksumError,
        match=r"cifar-10-binary.tar.gz: checksum mismatch \(expected MD5 "
        r"c32a1d4ab5d03f1284b67883e8d87530",
    ):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    # the same archive extracted by the user (tar xzf): parsed, structure checked
    with tarfile.open(tmp_path / "cifar-10-binary.tar.gz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    ds = load_dataset("cifar10", data_dir=tmp_path / "x", download=False)
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.test_images.shape == (4, 3, 32, 32)
    assert ds.classes[0] == "airplane" and ds.classes[-1] == "truck" and len(ds.classes) == 10
    want = np.concatenate([p for _, p in truth["train"]])
    assert np.array_equal(ds.train_images.numpy(), want)
    assert ds.train_labels.tolist() == np.concatenate([lb for lb, _ in truth["train"]]).tolist()
    means = want.reshape(20, 3, -1).transpose(1, 0, 2).reshape(3, -1).astype(np.float64).mean(1) / 255
    assert ds.mean == pytest.approx(tuple(means))


def test_cifar_archive_parser_directly(tmp_path):
    from cnnzoo.data.cifar import load_cifar
    from cnnzoo.data.sources import get_spec

    rng = np.random.default_rng(2)
    truth = write_cifar10(tmp_path / "a.tar.gz", rng)
    tensors, classes = load_cifar(get_spec("cifar10"), tmp_path / "a.tar.gz")
    assert np.array_equal(tensors["test_images"].numpy(), truth["test"][0][1])
    # a batch cut mid-record
    write_cifar10(
        tmp_path / "b.tar.gz",
        rng,
        corrupt=lambda m: {
            "cifar-10-batches-bin/data_batch_3.bin": m["cifar-10-batches-bin/data_batch_3.bin"][:-10]
        },
    )
    with pytest.raises(DataError, match=r"data_batch_3.bin: 12282 bytes is not a whole number of 3073-byte"):
        load_cifar(get_spec("cifar10"), tmp_path / "b.tar.gz")
    # a truncated archive
    blob = (tmp_path / "a.tar.gz").read_bytes()
    (tmp_path / "c.tar.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"c.tar.gz: corrupt or truncated archive"):
        load_cifar(get_spec("cifar10"), tmp_path / "c.tar.gz")


def test_cifar100_fine_labels_and_names(tmp_path):
    from cnnzoo.data.cifar import load_cifar
    from cnnzoo.data.sources import get_spec

    rng = np.random.default_rng(3)
    train, tl, tp = cifar_records(6, 2, rng, 20)  # coarse in 0..19, fine in 0..19 (< 100)
    test, _, _ = cifar_records(3, 2, rng, 20)
    names = "\n".join(f"class{i}" for i in range(100)).encode()
    _write_tar(
        tmp_path / "c100.tar.gz",
        {
            "cifar-100-binary/train.bin": train,
            "cifar-100-binary/test.bin": test,
            "cifar-100-binary/fine_label_names.txt": names,
        },
    )
    tensors, classes = load_cifar(get_spec("cifar100"), tmp_path / "c100.tar.gz")
    assert len(classes) == 100 and classes[7] == "class7"
    assert tensors["train_labels"].tolist() == tl[:, 1].tolist()  # the fine label is the 2nd byte
    assert np.array_equal(tensors["train_images"].numpy(), tp)
    _write_tar(
        tmp_path / "nonames.tar.gz", {"cifar-100-binary/train.bin": train, "cifar-100-binary/test.bin": test}
    )
    with pytest.raises(DataError, match=r"fine_label_names.txt \(the class names\) is missing"):
        load_cifar(get_spec("cifar100"), tmp_path / "nonames.tar.gz")


# ---------------------------------------------------------------- CLI


def test_cli_unknown_name_suggests(capsys):
    assert main(["data", "info", "fashon-mnist"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "cnnzoo data: error: unknown dataset 'fashon-mnist' — did you mean 'fashion-mnist'?"


def test_cli_info_and_list(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps long paths at 80 columns
    write_mnist_like(tmp_path / "k", n_train=12, n_test=5)
    assert main(["data", "info", "kmnist", "--data-dir", str(tmp_path / "k"), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert "12 images" in out and "5 images" in out and "1x28x28" in out and "not verified" in out
    assert main(["data", "list", "--data-dir", str(tmp_path / "k")]) == 0
    out = capsys.readouterr().out
    assert "kmnist" in out and "cifar100" in out and str(tmp_path / "k") in out
    assert (
        main(["data", "fetch", "mnist", "--data-dir", str(tmp_path / "nothing")]) == 2
    )  # mirror unreachable
    assert "could not download" in capsys.readouterr().err


def test_tables_match_torchvision():
    """sources.py copies torchvision's mirrors / MD5s / classes (to keep loads free of its import cost)."""
    from torchvision import datasets

    from cnnzoo.data.sources import get_spec

    for name, cls in (
        ("mnist", datasets.MNIST),
        ("fashion-mnist", datasets.FashionMNIST),
        ("kmnist", datasets.KMNIST),
    ):
        spec = get_spec(name)
        assert [(f.filename, f.md5) for f in spec.files] == [tuple(r) for r in cls.resources]
        assert list(spec.mirrors) == list(cls.mirrors) and list(spec.classes) == list(cls.classes)
    assert get_spec("cifar10").mirrors[0] == datasets.CIFAR10.url.rsplit("/", 1)[0] + "/"
    # REFERENCE.md's published .gz MD5s
    assert get_spec("mnist").files[0].md5 == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert get_spec("fashion-mnist").files[2].md5 == "bef4ecab320f06d8554ea6380940ec79"


# ---------------------------------------------------------------- dataset facts


def test_dataset_facts_live_on_the_specs():
    from cnnzoo.data import dataset_facts
    from cnnzoo.data.datasets import LOADERS
    from cnnzoo.data.sources import SPECS, get_spec

    mnist, fashion, kmnist = dataset_facts("mnist"), dataset_facts("Fashion-MNIST"), dataset_facts("kmnist")
    assert mnist.ink_margin == 4 / 28 and kmnist.ink_margin == 2 / 28 and fashion.ink_margin == 1 / 28
    assert not mnist.mirroring and not kmnist.mirroring and fashion.mirroring  # a flipped 2 is no 2
    assert all(f.light_on_dark and f.native_size == (28, 28) for f in (mnist, fashion, kmnist))
    assert dataset_facts("cifar10").native_size == (32, 32) and dataset_facts("cifar100").mirroring
    for name in SPECS:  # every dataset has its facts and a loader for its format
        assert dataset_facts(name) is get_spec(name).facts and get_spec(name).kind in LOADERS
    for other in ("imagefolder:/some/where", "emnist", ""):  # defaults: the model's size, polarity unknown
        facts = dataset_facts(other)
        assert facts.native_size is None and facts.light_on_dark is None and facts.mirroring
