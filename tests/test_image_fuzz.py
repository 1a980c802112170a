"""Fuzz the image loader: whatever a user uploads, ``load_image`` returns a uint8 image of the asked shape or
raises ``DataError`` naming the file: never another exception, never a hang, never a huge allocation.

Cases per run (derandomised, so CI sees the same ones): 500 random byte strings (some behind real magic
numbers), 300 truncated PNG/JPEG/GIF/BMP/WebP files, 300 files with flipped bytes, 200 PNG/GIF/BMP headers
declaring sizes up to 2³¹ = 1,300. ``pytest --hypothesis-show-statistics`` shows how each case ended.
"""

from __future__ import annotations

import io
import re
import signal
import struct
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnzoo.errors import DataError
from cnnzoo.inference import load_image

FUZZ = settings(
    derandomize=True,
    deadline=None,  # the alarm below bounds each case instead (deadline flakes on a loaded machine)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
SECONDS_PER_CASE = 10  # a real decode here takes milliseconds; 10 s means a hang


@contextmanager
def time_limit(seconds: int):
    def fail(signum, frame):
        raise TimeoutError(f"load_image took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def check(path: Path, channels: int, size: int) -> None:
    """The property: a (channels, size, size) uint8 tensor, or a DataError that names the file."""
    try:
        with time_limit(SECONDS_PER_CASE):
            img = load_image(path, channels, size)
    except DataError as e:
        assert str(path) in str(e), str(e)
        assert "\n" not in str(e)
        reason = re.sub(r"[\d,×]+", "N", str(e).removeprefix(f"{path}: ").split(" (")[0])
        event(f"DataError: {reason[:50]}")
        return
    event("decoded")
    assert isinstance(img, torch.Tensor) and img.dtype == torch.uint8
    assert img.shape == (channels, size, size)


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


images = st.builds(
    lambda seed, h, w, colour: np.random.default_rng(seed).integers(
        0, 256, (h, w, 3) if colour else (h, w), dtype=np.uint8
    ),
    st.integers(0, 2**32 - 1),
    st.integers(1, 48),
    st.integers(1, 48),
    st.booleans(),
)
formats = st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "WEBP"])
channels = st.sampled_from([1, 3])


@settings(FUZZ, max_examples=500)
@given(
    data=st.binary(max_size=2048),
    prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"RIFF"]),
    c=channels,
)
def test_random_bytes(workdir, data, prefix, c):
    path = workdir / "random.img"
    path.write_bytes(prefix + data)
    check(path, c, 28)


@settings(FUZZ, max_examples=300)
@given(pixels=images, fmt=formats, cut=st.floats(0, 1, exclude_max=True), c=channels)
def test_truncated_files(workdir, pixels, fmt, cut, c):
    data = encode(pixels, fmt)
    path = workdir / f"truncated.{fmt.lower()}"
    path.write_bytes(data[: int(len(data) * cut)])
    check(path, c, 16)


@settings(FUZZ, max_examples=300)
@given(
    pixels=images,
    fmt=formats,
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=8),
    c=channels,
)
def test_flipped_bytes(workdir, pixels, fmt, flips, c):
    data = bytearray(encode(pixels, fmt))
    for pos, xor in flips:
        data[pos % len(data)] ^= xor
    path = workdir / f"flipped.{fmt.lower()}"
    path.write_bytes(bytes(data))
    check(path, c, 16)


def png_declaring(width: int, height: int, colour_type: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 256)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def gif_declaring(width: int, height: int) -> bytes:
    # header, logical screen, image descriptor with the same size, a tiny LZW stream, trailer
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    descriptor = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return b"GIF89a" + screen + descriptor + b"\x02\x02\x44\x01\x00;"


def bmp_declaring(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    header = b"BM" + struct.pack("<IHHI", 14 + 40 + 12, 0, 0, 14 + 40)
    return header + info + b"\x00" * 12


@settings(FUZZ, max_examples=200)
@given(
    kind=st.sampled_from(["png", "gif", "bmp"]),
    width=st.one_of(st.integers(1, 64), st.integers(1, 2**16 - 1), st.integers(1, 2**31 - 1)),
    height=st.one_of(st.integers(1, 64), st.integers(1, 2**16 - 1), st.integers(1, 2**31 - 1)),
    colour_type=st.sampled_from([0, 2, 6]),
)
def test_huge_declared_dimensions(workdir, kind, width, height, colour_type):
    if kind == "png":
        data = png_declaring(width, height, colour_type)
    elif kind == "gif":
        data = gif_declaring(min(width, 2**16 - 1), min(height, 2**16 - 1))
    else:
        data = bmp_declaring(min(width, 2**31 - 1), min(height, 2**31 - 1))
    path = workdir / f"declared.{kind}"
    path.write_bytes(data)
    check(path, 1, 28)
