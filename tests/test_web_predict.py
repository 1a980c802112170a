"""Predictions through the web API: the gallery's real Fashion-MNIST test images are served pixel for pixel
and mostly classified right, a dark-on-light image is inverted back to the same prediction, a small drawing
is inverted, centred and scaled like the dataset, feature maps have the analyzer's shapes (LeNet-5's C1 to
output as in the 1998 paper), a 3-channel checkpoint takes a colour upload, and small drawings on a net known
to be fast are answered on the event loop while big images still go to the thread pool."""

from __future__ import annotations

import io

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from webclient import (
    FASHION_CLASSES,
    _idx_images,
    _idx_labels,
    decode_data_url,
    drawing,
    png,
    post,
    write_run,
)
from webclient import client_fixture as client_fixture  # fixtures, found by pytest under their names
from webclient import run_dir_fixture as run_dir_fixture

from cnnzoo.card import ModelCard
from cnnzoo.models import create_model
from cnnzoo.web import create_app, load_session
from cnnzoo.web.session import Session


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


def test_small_drawings_skip_the_thread_hop_once_the_net_is_known_fast(run_dir, monkeypatch):
    """A warmed-up LeNet answers a drawing on the event loop (a worker thread's time slice costs more than
    the work when other processes keep the cores busy); a big photo, or a net not yet timed, still goes
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
