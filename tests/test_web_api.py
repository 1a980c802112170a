"""The web API (issue #7): predictions on real Fashion-MNIST test images, inversion of drawings, feature maps
with LeNet-5's shapes, the analyzer's figures, and every kind of bad input -> a 4xx JSON error, after
which the server still answers a good request.

The checkpoint is made here: lenet5_modern trained for one pass over 6,000 Fashion-MNIST training images
(a plain loop: ``cnnzoo.fit`` had not landed when this was written), saved with ``cnnzoo.checkpoint``.
"""

from __future__ import annotations

import io
import json
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from cnnzoo import cli
from cnnzoo.card import ModelCard
from cnnzoo.checkpoint import CheckpointMeta, save_checkpoint
from cnnzoo.models import create_model, list_models
from cnnzoo.web import create_app, load_session
from cnnzoo.web.session import Session, find_latest_run

FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not at /usr/share/datasets")


def _idx_images(name: str) -> torch.Tensor:
    import gzip

    with gzip.open(FASHION / name) as f:
        return torch.frombuffer(bytearray(f.read()[16:]), dtype=torch.uint8).view(-1, 1, 28, 28)


def _idx_labels(name: str) -> torch.Tensor:
    import gzip

    with gzip.open(FASHION / name) as f:
        return torch.frombuffer(bytearray(f.read()[8:]), dtype=torch.uint8).long()


def write_run(run_dir: Path, model: torch.nn.Module, meta: dict) -> Path:
    """A run directory as `cnnzoo train` writes it, through the checkpoint API."""
    return save_checkpoint(run_dir, model, CheckpointMeta(**meta))


def train_fashion_run(run_dir: Path, n: int = 6000) -> Path:
    """lenet5_modern after one pass over ``n`` Fashion-MNIST images (21 of the 30 gallery images right)."""
    torch.manual_seed(0)
    images, labels = (
        _idx_images("train-images-idx3-ubyte.gz")[:n],
        _idx_labels("train-labels-idx1-ubyte.gz")[:n],
    )
    mean, std = 0.2860, 0.3530  # Fashion-MNIST training-set statistics
    x = (images.float() / 255 - mean) / std
    model = create_model("lenet5_modern")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for i in range(0, n, 64):
        loss = F.cross_entropy(model(x[i : i + 64]), labels[i : i + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
    meta = {
        "model": "lenet5_modern",
        "model_kwargs": {},
        "input_size": [1, 28, 28],
        "dataset": "fashion-mnist",
        "classes": FASHION_CLASSES,
        "mean": [mean],
        "std": [std],
        "epoch": 1,
        "metrics": {},
        "format_version": 1,
    }
    return write_run(run_dir, model.eval(), meta)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    if not FASHION.is_dir():
        pytest.skip("Fashion-MNIST not at /usr/share/datasets")
    return train_fashion_run(tmp_path_factory.mktemp("runs") / "fashion-lenet")


@pytest.fixture(scope="module")
def client(run_dir) -> TestClient:
    return TestClient(create_app(load_session(run_dir)))


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def drawing(points=((100, 60), (180, 60), (130, 230)), size=280) -> bytes:
    """A black stroke on a white canvas, as the predict page sends it."""
    img = Image.new("L", (size, size), 255)
    ImageDraw.Draw(img).line(points, fill=0, width=18)
    return png(img)


def post(client, data: bytes, name="x.png", **form):
    return client.post("/api/predict", files={"file": (name, data, "image/png")}, data=form)


def decode_data_url(url: str) -> np.ndarray:
    import base64

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def assert_still_serving(client):
    r = post(client, drawing())
    assert r.status_code == 200, r.text
    assert abs(sum(r.json()["probabilities"]) - 1) < 1e-5


# --- the happy paths ----------------------------------------------------------------------------------
def test_info_describes_the_checkpoint(client, run_dir):
    info = client.get("/api/info").json()
    assert info["model"] == "lenet5_modern" and info["source"] == str(run_dir)
    assert info["classes"] == FASHION_CLASSES and info["input_size"] == [1, 28, 28]
    assert info["warning"] is None and info["light_on_dark"] is True


def test_gallery_predictions_are_mostly_right(client):
    """The gallery's test images (true labels from the IDX file) through the whole HTTP path."""
    g = client.get("/api/gallery").json()
    labels = _idx_labels("t10k-labels-idx1-ubyte.gz")
    images = _idx_images("t10k-images-idx3-ubyte.gz")
    assert len(g["items"]) == 30 and {it["label"] for it in g["items"]} == set(range(10))
    right = 0
    for it in g["items"]:
        r = client.get(it["url"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        served = np.asarray(Image.open(io.BytesIO(r.content)))
        # the served image is one of the test images of its class, pixel for pixel
        idx = (labels == it["label"]).nonzero().flatten()
        assert any(np.array_equal(served, images[i, 0].numpy()) for i in idx[:3].tolist())
        p = post(client, r.content).json()
        assert p["inverted"] is False  # already light on dark
        right += p["prediction"]["index"] == it["label"]
    assert right >= 18, f"{right}/30 gallery images right after one epoch"  # ~80% expected, chance is 10%


def test_dark_on_light_is_inverted_and_predicted_the_same(client):
    """A test image drawn the other way round (black on white) is inverted back: same prediction, and
    the input the network sees is the original image."""
    img = _idx_images("t10k-images-idx3-ubyte.gz")[0, 0].numpy()  # an ankle boot
    normal = post(client, png(Image.fromarray(img))).json()
    flipped = post(client, png(Image.fromarray(255 - img))).json()
    assert flipped["inverted"] is True and normal["inverted"] is False
    assert flipped["prediction"]["index"] == normal["prediction"]["index"]
    np.testing.assert_allclose(flipped["probabilities"], normal["probabilities"], atol=1e-5)
    assert np.abs(decode_data_url(flipped["input_png"]).astype(int) - img).max() <= 1
    kept = post(client, png(Image.fromarray(255 - img)), invert="no").json()
    assert kept["inverted"] is False


def test_drawing_is_inverted_and_centred_on_its_strokes(client):
    """A small stroke in a corner of the canvas ends up light on dark and centred, as the dataset frames."""
    r = post(client, drawing(points=((10, 10), (60, 70))), fit="true").json()
    seen = decode_data_url(r["input_png"]).astype(float)
    assert r["inverted"] is True and seen.shape == (28, 28)
    assert seen[0].max() < 40 and seen[:, 0].max() < 40  # dark border
    ys, xs = np.nonzero(seen > 64)
    assert abs(ys.mean() - 13.5) < 3 and abs(xs.mean() - 13.5) < 3  # centred
    assert ys.max() - ys.min() >= 20  # scaled up to fill the frame


def test_feature_maps_follow_the_analyzer(client):
    """Each shown layer's map shape is the analyzer's output shape for that layer (two independent paths)."""
    r = client.post("/api/feature-maps", files={"file": ("d.png", drawing(), "image/png")}).json()
    summary = client.get("/api/summary/lenet5_modern?input=1x28x28").json()
    shapes = {layer["name"]: layer["output_shape"] for layer in summary["layers"]}
    assert [layer["shape"] for layer in r["layers"]][:4] == [
        [6, 28, 28],
        [6, 14, 14],
        [16, 10, 10],
        [16, 5, 5],
    ]
    for layer in r["layers"]:
        assert layer["shape"] == shapes[layer["label"]], layer["label"]
        assert len(layer["data"]) == layer["maps"] * layer["h"] * layer["w"]
        assert all(0 <= v <= 255 for v in layer["data"])
    assert r["layers"][-1]["shape"] == [10] and r["prediction"]["class"] in FASHION_CLASSES


def test_lenet5_feature_maps_have_the_papers_shapes():
    """LeNet-5 (1998): C1 6@28×28, S2 6@14×14, C3 16@10×10, S4 16@5×5, C5 120@1×1, F6 84, output 10."""
    model = create_model("lenet5").eval()
    meta = {
        "model": "lenet5",
        "input_size": [1, 32, 32],
        "dataset": "mnist",
        "classes": [str(i) for i in range(10)],
        "mean": [0.1307],
        "std": [0.3081],
    }
    c = TestClient(create_app(Session(model, ModelCard(**meta), "test")))
    layers = c.post("/api/feature-maps", files={"file": ("d.png", drawing(), "image/png")}).json()["layers"]
    got = [(layer["label"], layer["shape"]) for layer in layers]
    assert got == [
        ("C1", [6, 28, 28]),
        ("S2", [6, 14, 14]),
        ("C3", [16, 10, 10]),
        ("S4", [16, 5, 5]),
        ("C5", [120, 1, 1]),
        ("F6", [84]),
        ("output", [10]),
    ]
    assert layers[0]["signed"]  # scaled tanh is signed: drawn with a diverging colour map


def test_three_channel_checkpoint(tmp_path):
    """A 3-channel model (CIFAR-like) takes a colour upload; no gallery when the dataset is absent."""
    model = create_model("lenet5_modern", in_channels=3, input_size=(32, 32)).eval()
    meta = {
        "model": "lenet5_modern",
        "model_kwargs": {"in_channels": 3, "input_size": [32, 32]},
        "input_size": [3, 32, 32],
        "dataset": "cifar10",
        "classes": [f"c{i}" for i in range(10)],
        "mean": [0.49, 0.48, 0.45],
        "std": [0.25, 0.24, 0.26],
        "epoch": 0,
        "metrics": {},
    }
    c = TestClient(create_app(load_session(write_run(tmp_path / "cifar", model, meta))))
    photo = Image.new("RGB", (64, 48), (250, 250, 250))  # a bright photo: never auto-inverted for colour data
    ImageDraw.Draw(photo).ellipse((10, 10, 40, 40), fill=(200, 30, 30))
    r = post(c, png(photo)).json()
    assert r["input_size"] == [3, 32, 32] and r["inverted"] is False and len(r["probabilities"]) == 10
    assert decode_data_url(r["input_png"]).shape == (32, 32, 3)
    g = c.get("/api/gallery").json()
    if not g["items"]:  # CIFAR-10 cannot be downloaded here: the page says why there is no gallery
        assert g["note"].startswith("no gallery")
    for it in g["items"][:3]:  # where it is cached locally, its images are colour 32×32
        assert np.asarray(Image.open(io.BytesIO(c.get(it["url"]).content))).shape == (32, 32, 3)


# --- the explorer API ----------------------------------------------------------------------------------
def test_models_lists_the_registry(client):
    names = [m["name"] for m in client.get("/api/models").json()["models"]]
    assert names == list_models() and "lenet5" in names


def test_summary_reproduces_lecun_1998(client):
    s = client.get("/api/summary/lenet5?input=1x32x32").json()
    assert s["total"]["trainable_params"] == 60_000 and s["total"]["connections"] == 340_908  # REFERENCE.md
    c1 = next(layer for layer in s["layers"] if layer["name"] == "c1")
    assert c1["output_shape"] == [6, 28, 28] and c1["connections"] == 122_304


@pytest.mark.skipif("vgg16" not in list_models(), reason="vgg16 not registered yet")
def test_summary_vgg16(client):
    s = client.get("/api/summary/vgg16?input=3x224x224").json()
    assert s["total"]["params"] == 138_357_544  # REFERENCE.md, VGG D


# --- bad input: a clear 4xx JSON error each time, then the server still works -----------------------------
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


def test_unknown_model_says_did_you_mean(client):
    r = client.get("/api/summary/lenet6?input=1x32x32")
    assert r.status_code == 404 and "did you mean" in r.json()["error"] and "lenet5" in r.json()["error"]
    assert client.get("/api/summary/lenet5").status_code == 200


@pytest.mark.parametrize(
    "size, words",
    [
        ("abc", "not a size"),
        ("0x0x0", "at least 1"),
        ("1x32", "not a size"),
        ("3x100000x100000", "too large"),
        ("64x32x32", "too large"),
        ("1x-3x32", "not a size"),
    ],
)
def test_nonsense_sizes(client, size, words):
    r = client.get(f"/api/summary/lenet5?input={size}")
    assert r.status_code == 422 and words in r.json()["error"], r.text
    assert client.get("/api/summary/lenet5?input=1x32x32").status_code == 200


def test_too_small_input_shows_the_analyzers_message(client):
    r = client.get("/api/summary/lenet5?input=1x8x8")
    assert r.status_code == 422
    assert "32" in r.json()["error"] or "small" in r.json()["error"]  # names what would work
    assert client.get("/api/summary/lenet5?input=1x32x32").status_code == 200


def test_unknown_gallery_image(client):
    r = client.get("/api/gallery/999.png")
    assert r.status_code == 404 and "gallery" in r.json()["error"]


# --- pages and the command ----------------------------------------------------------------------------
def test_pages_load_nothing_from_elsewhere(client):
    for path in ("/", "/explore"):
        r = client.get(path)
        assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    static = Path(__import__("cnnzoo.web", fromlist=["x"]).__file__).parent / "static"
    for f in static.iterdir():
        text = f.read_text()
        for url in ("http://", "https://", "//fonts.", "cdn"):
            hits = [line for line in text.splitlines() if url in line and "w3.org/2000/svg" not in line]
            assert not hits, f"{f.name} refers to {url}: {hits[:1]}"
    assert client.get("/static/predict.js").status_code == 200
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]


def test_newest_finished_run_of_any_model_is_chosen(tmp_path, run_dir):
    runs = tmp_path / "runs"
    meta = json.loads((run_dir / "checkpoint.json").read_text())
    meta.pop("weights_sha256", None)
    old = write_run(runs / "old", create_model("lenet5_modern"), meta)
    new = write_run(runs / "sub" / "new", create_model("lenet5_modern"), meta)
    os.utime(old / "model.safetensors", (1, 1))
    os.utime(new / "model.safetensors", (2, 2))
    assert find_latest_run(runs) == new
    unfinished = runs / "still-writing"  # its checkpoint.json without weights yet
    unfinished.mkdir()
    (unfinished / "checkpoint.json").write_text("{")
    assert find_latest_run(runs) == new
    assert find_latest_run(tmp_path / "nothing-here") is None


def test_serve_finds_a_run_that_is_not_lenet(tmp_path, run_dir):
    runs = tmp_path / "runs"
    keras = {**json.loads((run_dir / "checkpoint.json").read_text()), "model": "keras_mnist_cnn"}
    keras.pop("weights_sha256", None)
    only = write_run(runs / "keras", create_model("keras_mnist_cnn"), keras)
    session = load_session(None, runs)
    assert session.source == str(only) and session.warning is None
    assert session.card.model == "keras_mnist_cnn"


def test_untrained_fallback_warns(tmp_path):
    session = load_session(None, tmp_path)
    assert session.source == "untrained" and "untrained" in session.warning
    assert session.card.model in ("lenet5_modern", "lenet5")


def test_serve_command_refuses_a_missing_checkpoint(tmp_path, capsys):
    assert cli.main(["serve", "--checkpoint", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnzoo serve: error:") and "nope" in err and "\n" not in err


def test_openapi_docs_are_served_without_a_cdn(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert "cdn." not in page.text and "https://" not in page.text.split("<body>")[0]
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("fit", ["true", "false"])
@pytest.mark.parametrize("width, height", [(1, 16_777_216), (16_777_216, 1), (16_384, 8)])
def test_extreme_aspect_ratios_are_refused_from_the_header(client, fit, width, height):
    """Issue #17: a 32 KB PNG of 1×16,777,216 pixels (under the pixel cap) made ``fit`` square it into an
    18 M × 18 M image. The decoder refuses such shapes before decoding a pixel."""
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


def test_small_drawings_skip_the_thread_hop_once_the_net_is_known_fast(run_dir, monkeypatch):
    """A warmed-up LeNet answers a drawing on the event loop (a worker thread's time slice costs more than
    the work when other processes keep the cores busy, #20); a big photo, or a net not yet timed, still goes
    to the thread pool, so the loop never blocks on a long decode."""
    import cnnzoo.web.app as web_app

    hops = []
    real = web_app.run_in_threadpool

    async def counting(fn, *args):
        hops.append(fn)
        return await real(fn, *args)

    monkeypatch.setattr(web_app, "run_in_threadpool", counting)
    session = load_session(run_dir)
    cold = TestClient(create_app(session))
    assert post(cold, drawing()).status_code == 200 and len(hops) == 1  # not timed yet: the pool
    session.warm_up()
    assert 0 < session.predict_seconds < web_app.INLINE_SECONDS  # a LeNet prediction is well under 5 ms
    warm = TestClient(create_app(session))
    r = post(warm, drawing())
    assert r.status_code == 200 and len(hops) == 1, r.text  # inline
    big = Image.new("L", (800, 800), 255)  # 640,000 pixels > INLINE_PIXELS
    ImageDraw.Draw(big).line(((100, 100), (700, 700)), fill=0, width=60)
    r2 = post(warm, png(big))
    assert r2.status_code == 200 and len(hops) == 2
    assert r.json()["probabilities"] == post(cold, drawing()).json()["probabilities"]  # the same answer


def test_info_gives_the_test_accuracy_not_the_training_one(tmp_path, run_dir):
    meta = {**json.loads((run_dir / "checkpoint.json").read_text()), "epoch": 5}
    meta.pop("weights_sha256", None)
    meta["metrics"] = {"loss": 1.0, "accuracy": 0.6233}  # the last epoch's training figures
    run = write_run(tmp_path / "run", create_model("lenet5_modern"), meta)
    assert load_session(run).info()["test_accuracy"] is None  # no test figure yet: none is made up
    (run / "result.json").write_text(json.dumps({"epochs": 5, "test_accuracy": 0.655}))
    assert load_session(run).info()["test_accuracy"] == 0.655
    (run / "result.json").write_text(json.dumps({"epochs": 3, "test_accuracy": 0.5}))  # another checkpoint's
    assert load_session(run).info()["test_accuracy"] is None
