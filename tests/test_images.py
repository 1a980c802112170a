"""The one guarded image decoder (cnnzoo.images): one allow-list, one pixel cap, bounded shapes, for the web
app, ``cnnzoo predict`` and image folders alike."""

from __future__ import annotations

import io
import os
import struct
import zlib

import pytest
from PIL import Image

from cnnzoo import images
from cnnzoo.errors import DataError


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``×``height`` grey pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "WEBP"])
def test_allowed_formats_decode_from_bytes_and_paths(tmp_path, fmt):
    data = encoded(Image.new("RGB", (12, 8), (10, 200, 30)), fmt)
    (tmp_path / "x").write_bytes(data)
    for source in (data, tmp_path / "x"):
        with images.decode_image(source, "x") as img:
            assert img.size == (12, 8)


@pytest.mark.parametrize("fmt", ["TIFF", "PPM", "ICO", "TGA", "PCX", "SGI", "JPEG2000"])
def test_other_pillow_formats_are_refused(fmt):
    with pytest.raises(DataError, match="up.png: unreadable image: not an image cnnzoo can read"):
        images.decode_image(encoded(Image.new("RGB", (16, 16)), fmt), "up.png")


def test_pixel_cap_is_read_from_the_header():
    assert images.MAX_PIXELS == 4096 * 4096
    with pytest.raises(DataError, match="more than the limit of 16,777,216"):
        images.open_image(png_declaring(5000, 5000), "bomb.png")  # under Pillow's own limit, over ours


@pytest.mark.parametrize(
    "width, height",
    [(1, 16_777_216), (16_777_216, 1), (16_385, 2), (8192, 64), (64, 8192)],  # 1×16.7 M
)
def test_extreme_shapes_are_refused_from_the_header(width, height):
    with pytest.raises(DataError, match="more than the limit"):
        images.open_image(png_declaring(width, height), "strip.png")


@pytest.mark.parametrize("width, height", [(3000, 2), (2, 3000), (4096, 64), (4096, 4096), (1, 1)])
def test_small_strips_and_squares_are_fine(width, height):
    images.check_size(width, height, "ok.png")


def test_only_regular_files_are_read(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="pipe.png: not a regular file"):
        images.decode_image(fifo)  # would hang on open
    with pytest.raises(DataError, match="not a regular file"):
        images.decode_image("/dev/zero")  # would never end
    with pytest.raises(DataError, match="is a directory"):
        images.decode_image(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        images.decode_image(tmp_path / "missing.png")


def test_to_channels_flattens_transparency_onto_white():
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert images.to_channels(clear, 1).getpixel((0, 0)) == 255
    assert images.to_channels(clear, 3).getpixel((0, 0)) == (255, 255, 255)
