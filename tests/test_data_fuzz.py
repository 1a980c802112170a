"""Fuzzing the file readers: random and mutated bytes give either a valid result or
a DataError — never another exception, never a hang, never an allocation far beyond the input's size."""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import tarfile
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnzoo.data.idx import MAX_DEFLATE_RATIO, read_idx
from cnnzoo.errors import DataError

EXAMPLES = int(os.environ.get("CNNZOO_FUZZ_EXAMPLES", "250"))  # raise it for a long run
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=10_000,  # a hang fails; generous for a loaded 2-core box
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
    database=None,
)
RAN = {"idx": 0, "cifar": 0}


def valid_idx(n=3, h=4, w=5) -> bytes:
    arr = np.arange(n * h * w, dtype=np.uint8).reshape(n, h, w)
    return bytes([0, 0, 8, 3]) + struct.pack(">3I", n, h, w) + arr.tobytes()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    yield tmp_path_factory.mktemp("fuzz")
    print(f"\nfuzz cases run: {RAN}")


@pytest.fixture(scope="module")
def cifar10_spec():
    from cnnzoo.data.sources import get_spec

    return get_spec("cifar10")  # imports torchvision once, outside the timed examples


def check_idx(path, blob: bytes) -> None:
    """The property: a valid array consistent with the header, or a one-line DataError naming the file."""
    path.write_bytes(blob)
    tracemalloc.start()
    try:
        idx = read_idx(path)
    except DataError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        RAN["idx"] += 1
        # what a gzip file of this size can expand to, plus the interpreter's own working set
        assert peak < 2 * MAX_DEFLATE_RATIO * len(blob) + (4 << 20), f"allocated {peak} bytes for {len(blob)}"
    header = 4 + 4 * idx.array.ndim
    assert idx.array.size == math.prod(idx.array.shape)
    raw = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
    assert idx.array.nbytes == len(raw) - header


mutations = st.one_of(
    st.binary(max_size=300).map(lambda b: ("garbage", b)),
    st.integers(0, len(valid_idx())).map(lambda k: ("truncated", valid_idx()[:k])),
    st.tuples(st.integers(0, 15), st.integers(0, 255)).map(
        lambda t: ("header byte", valid_idx()[: t[0]] + bytes([t[1]]) + valid_idx()[t[0] + 1 :])
    ),
    st.tuples(st.integers(0, 2), st.integers(0, 2**32 - 1)).map(
        lambda t: (
            "dimension",
            valid_idx()[: 4 + 4 * t[0]] + struct.pack(">I", t[1]) + valid_idx()[8 + 4 * t[0] :],
        )
    ),
    st.binary(max_size=64).map(lambda b: ("extra bytes", valid_idx() + b)),
)


@FUZZ
@given(case=mutations, compress=st.booleans())
def test_idx_reader_mutations(workdir, case, compress):
    _, blob = case
    check_idx(workdir / "m.idx", gzip.compress(blob) if compress else blob)


@FUZZ
@given(
    blob=st.binary(min_size=0, max_size=400),
    cut=st.integers(0, 400),
    dims=st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=5),
)
def test_idx_reader_gzip_damage(workdir, blob, cut, dims):
    # a header with arbitrary claimed dimensions, gzipped and then cut: the claimed size must be checked
    # against the file before allocating
    head = bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    gz = gzip.compress(head + blob)
    check_idx(workdir / "g.idx.gz", gz[: max(cut, 2)] if cut < len(gz) else gz)


@FUZZ
@given(blob=st.binary(max_size=4000), flip=st.integers(0, 10**6))
def test_cifar_archive_garbage(workdir, cifar10_spec, blob, flip):
    from cnnzoo.data.cifar import load_cifar

    # a well-formed tar.gz with random member contents, then one byte flipped somewhere
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    data = bytearray(buf.getvalue())
    if flip % 3:
        data[flip % len(data)] ^= 0xFF
    path = workdir / "c.tar.gz"
    path.write_bytes(bytes(data))
    RAN["cifar"] += 1
    try:
        tensors, _ = load_cifar(cifar10_spec, path)
    except DataError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    assert tensors["train_images"].shape[1:] == (3, 32, 32)
    assert tensors["train_images"].shape[0] * 3073 == 5 * len(blob)
