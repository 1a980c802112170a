"""A web client on a real checkpoint, shared by the web tests: the Fashion-MNIST test files read as IDX, a run
directory written through the checkpoint API, lenet5_modern trained for one pass over 6,000 Fashion-MNIST
training images in a plain loop (``run_dir``) and a TestClient on it (``client``), and the requests the
predict page sends (a drawn stroke, a PNG upload)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from helpers import FASHION, FASHION_CLASSES  # noqa: F401 (the web tests import them from here)
from PIL import Image, ImageDraw

from cnnzoo.checkpoint import CheckpointMeta, save_checkpoint
from cnnzoo.models import create_model
from cnnzoo.web import create_app, load_session


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


@pytest.fixture(scope="module", name="run_dir")
def run_dir_fixture(tmp_path_factory) -> Path:
    if not FASHION.is_dir():
        pytest.skip("Fashion-MNIST not at /usr/share/datasets")
    return train_fashion_run(tmp_path_factory.mktemp("runs") / "fashion-lenet")


@pytest.fixture(scope="module", name="client")
def client_fixture(run_dir) -> TestClient:
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
