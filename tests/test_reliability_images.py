"""Hostile and odd images through the real ``cnnzoo predict``: zero-byte, garbage, truncated, decompression
bombs, refused formats and pickles named .png give exit 2 and one line naming the image; valid images in
unusual shapes (a PNG named .jpg, 1×1, 16-bit, CMYK, palette, a 3000×2 strip) predict; random and mutated
image bytes (hypothesis) give exit 0 or one line, never a traceback."""

from __future__ import annotations

import pickle
import random
import struct
import zlib

import pytest
from cli_harness import FUZZ, MODEL, _count, assert_clear_error, cli
from cli_harness import image_fixture as image_fixture  # fixtures, found by pytest under their names
from cli_harness import root_fixture as root_fixture
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A 100-byte PNG that claims ``width``×``height`` 8-bit grey pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gradient(mode: str = "L", size=(40, 30)) -> Image.Image:
    img = Image.linear_gradient("L").resize(size)
    return img.convert(mode)


BAD_IMAGES = {  # file name -> bytes; every one must give exit 2 and a line naming the file
    "zero-byte.png": lambda: b"",
    "garbage.png": lambda: random.Random(0).randbytes(3000),
    "text.jpg": lambda: b"<html><body>404 Not Found</body></html>\n",
    "truncated.png": lambda: _encoded(_gradient(), "PNG")[:60],
    "truncated.jpg": lambda: _encoded(_gradient("RGB", (200, 150)), "JPEG")[:700],
    "png-signature-only.png": lambda: b"\x89PNG\r\n\x1a\n",
    "huge-dimensions.png": lambda: png_header_only(60_000, 60_000),  # 3.6 G pixels in 100 bytes
    "tiff-not-allowed.png": lambda: _encoded(_gradient(), "TIFF"),  # a real image, in a refused format
    "pickle.png": lambda: pickle.dumps({"a": 1}),
}
GOOD_IMAGES = {  # valid images in unusual shapes: exit 0
    "png-named.jpg": lambda: _encoded(_gradient(), "PNG"),  # the content decides, not the extension
    "no-extension": lambda: _encoded(_gradient(), "PNG"),
    "one-pixel.png": lambda: _encoded(Image.new("L", (1, 1), 255), "PNG"),
    "sixteen-bit.png": lambda: _encoded(_gradient("I;16"), "PNG"),
    "rgba-transparent.png": lambda: _encoded(Image.new("RGBA", (28, 28), (0, 0, 0, 0)), "PNG"),
    "cmyk.jpg": lambda: _encoded(_gradient("CMYK"), "JPEG"),
    "palette.gif": lambda: _encoded(_gradient("P"), "GIF"),
    "wide-strip.bmp": lambda: _encoded(_gradient("RGB", (3000, 2)), "BMP"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_predict_hostile_image_is_one_line_exit_2(capsys, root, name):
    path = root / "images" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(BAD_IMAGES[name]())
    code, _, err = cli(capsys, "predict", MODEL, path)
    assert_clear_error(code, err, "predict", path)


@pytest.mark.parametrize("name", sorted(GOOD_IMAGES))
def test_predict_unusual_but_valid_image_works(capsys, root, name):
    path = root / "images" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(GOOD_IMAGES[name]())
    code, out, err = cli(capsys, "predict", MODEL, path, "--top-k", "2")
    assert code == 0, err
    assert "probability" in out and "Traceback" not in err


def test_predict_missing_and_directory_images(capsys, root, image):
    for bad in (root / "no-such.png", root):
        code, _, err = cli(capsys, "predict", MODEL, image, bad)  # a good image first: the batch still fails
        assert_clear_error(code, err, "predict", bad)


@FUZZ
@given(blob=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".gif", ".bmp", ".webp", ""]))
def test_predict_random_bytes_never_crash(capsys, root, blob, suffix):
    _count("predict: random image bytes")
    path = root / "images" / f"fuzz{suffix}"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(blob)
    code, _, err = cli(capsys, "predict", MODEL, path)
    if code != 0:
        assert_clear_error(code, err, "predict", path)


@FUZZ
@given(data=st.data())
def test_predict_mutated_png_never_crashes(capsys, root, data):
    """Real PNG/JPEG/GIF bytes with a few bytes flipped or cut: the decoders' corner cases."""
    _count("predict: mutated image")
    fmt = data.draw(st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "WEBP"]))
    blob = bytearray(_encoded(_gradient("RGB" if fmt in ("JPEG", "WEBP") else "L"), fmt))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= data.draw(st.integers(1, 255))
    blob = blob[: data.draw(st.integers(1, len(blob)))]
    path = root / "images" / f"mutated.{fmt.lower()}"
    path.write_bytes(bytes(blob))
    code, _, err = cli(capsys, "predict", MODEL, path)
    if code != 0:
        assert_clear_error(code, err, "predict", path)
