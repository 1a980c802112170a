"""Bad uploads to the web API: images that are not images, empty, truncated or decompression bombs, bodies
over 10 MiB (by their declared length, or counted while a chunked body streams in), a missing or invalid form
field, an unknown gallery image, and extreme aspect ratios each get a clear 4xx JSON error quickly, after
which the server still answers a good request; long strips the decoder accepts are fitted in bounded
memory."""

from __future__ import annotations

import json
import struct
import time
import zlib

import pytest
from PIL import Image, ImageDraw
from webclient import assert_still_serving, drawing, png, post
from webclient import client_fixture as client_fixture  # fixtures, found by pytest under their names
from webclient import run_dir_fixture as run_dir_fixture


def png_declaring(w: int, h: int) -> bytes:
    """A valid-looking PNG whose header declares w×h pixels (a decompression bomb of a few hundred bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "data, status, words",
    [
        (b"this is not an image", 400, "not an image"),
        (b"", 400, "empty"),
        (png_declaring(50000, 50000), 400, "decompression bomb"),
        (png_declaring(5000, 5000), 400, "decompression bomb"),  # under Pillow's own limit, over ours
        (drawing()[:200], 400, "corrupt"),  # a truncated PNG
    ],
    ids=["not-image", "empty", "bomb-50000", "bomb-5000", "truncated"],
)
@pytest.mark.parametrize("endpoint", ["/api/predict", "/api/feature-maps"])
def test_bad_images(client, endpoint, data, status, words):
    r = client.post(endpoint, files={"file": ("bad.png", data, "image/png")})
    assert r.status_code == status and words in r.json()["error"], r.text
    assert_still_serving(client)


def test_upload_over_the_limit_is_refused_by_its_declared_length(client):
    t = time.perf_counter()
    r = post(client, b"\0" * (10 * 1024 * 1024 + 1))
    assert r.status_code == 413 and "10 MiB" in r.json()["error"]
    assert time.perf_counter() - t < 5
    assert_still_serving(client)


def test_chunked_upload_is_cut_off_while_reading(client):
    """No Content-Length: the body is counted as it streams and refused once past 10 MiB, so the server
    stops pulling chunks (TestClient buffers bodies, so this drives the ASGI app directly)."""
    import asyncio

    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    chunks = [head] + [b"\0" * (1024 * 1024)] * 64  # would be 64 MiB
    pulled, sent = [], []

    async def receive():
        pulled.append(1)
        if len(pulled) <= len(chunks):
            return {"type": "http.request", "body": chunks[len(pulled) - 1], "more_body": True}
        return {"type": "http.request", "body": b"\r\n--b--\r\n", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/predict",
        "raw_path": b"/api/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b"), (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(client.app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 413 and "10 MiB" in json.loads(body)["error"]
    assert len(pulled) <= 12  # 10 MiB + the part header, then it stopped reading
    assert_still_serving(client)


def test_missing_file_field(client):
    r = client.post("/api/predict", data={"invert": "auto"})
    assert r.status_code == 422 and "file" in r.json()["error"]
    r = post(client, drawing(), invert="sideways")
    assert r.status_code == 422 and "invert" in r.json()["error"]
    assert_still_serving(client)


def test_unknown_gallery_image(client):
    r = client.get("/api/gallery/999.png")
    assert r.status_code == 404 and "gallery" in r.json()["error"]


@pytest.mark.parametrize("fit", ["true", "false"])
@pytest.mark.parametrize("width, height", [(1, 16_777_216), (16_777_216, 1), (16_384, 8)])
def test_extreme_aspect_ratios_are_refused_from_the_header(client, fit, width, height):
    """A 32 KB PNG of 1×16,777,216 pixels (under the pixel cap) would make ``fit`` square it into an
    18 M × 18 M image: the decoder refuses such shapes before decoding a pixel."""
    t = time.perf_counter()
    r = post(client, png_declaring(width, height), fit=fit)
    assert r.status_code == 400 and "more than the limit" in r.json()["error"], r.text
    assert time.perf_counter() - t < 2
    assert_still_serving(client)


@pytest.mark.parametrize("size", [(4096, 64), (64, 4096), (3000, 2)])
def test_long_drawings_are_fitted_in_bounded_memory(client, size):
    """Strips the decoder accepts are shrunk before ``fit`` squares them: a small answer, quickly."""
    img = Image.new("L", size, 255)
    ImageDraw.Draw(img).line((0, 0, *size), fill=0, width=3)
    t = time.perf_counter()
    r = post(client, png(img), fit="true")
    assert r.status_code == 200, r.text
    assert abs(sum(r.json()["probabilities"]) - 1) < 1e-5 and time.perf_counter() - t < 5
