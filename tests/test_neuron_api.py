"""POST /api/neuron: one neuron's multiply-add, receptive field and input gradient, checked against a real
forward pass (the feature extractor the page's maps come from) and against the analyzer."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

import cnnzoo
from cnnzoo.card import card_of
from cnnzoo.features import FeatureExtractor
from cnnzoo.layers import LENET5_C3_TABLE
from cnnzoo.web import create_app
from cnnzoo.web.session import Session, layer_rows

ACTIVATIONS = {
    "ReLU": lambda z: max(0.0, z),
    "ScaledTanh": lambda z: 1.7159 * np.tanh(2 / 3 * z),
}


def _session(name: str) -> Session:
    torch.manual_seed(0)
    model = cnnzoo.create_model(name).eval()
    return Session(model, card_of(model).replace(dataset="fashion-mnist"), "untrained")


@pytest.fixture(scope="module")
def image() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module", params=["lenet5", "lenet5_modern"])
def served(request):
    session = _session(request.param)
    return session, TestClient(create_app(session))


def ask(client: TestClient, image: bytes, layer: str, channel: int, y: int = 0, x: int = 0):
    form = {"layer": layer, "channel": str(channel), "y": str(y), "x": str(x), "invert": "no"}
    return client.post("/api/neuron", files={"file": ("noise.png", image, "image/png")}, data=form)


def forward_value(session: Session, image: bytes, node: str, channel: int, y: int, x: int) -> float:
    """The value the page's feature map holds: the feature extractor's output of the row's last node."""
    prepared = session.prepare(Image.open(io.BytesIO(image)), "no")
    out = FeatureExtractor(session.model, [node])(prepared.x)[node][0]
    return float(out[channel, y, x] if out.dim() == 3 else out.flatten()[channel])


def conv_rows(session: Session):
    return [r for r in layer_rows(session.model) if "Conv" in r.kind]


def test_dot_product_through_activation_is_the_feature_maps_value(served, image):
    session, client = served
    for row in conv_rows(session):
        for channel, y, x in [(0, 0, 0), (1, 3, 4), (2, 5, 2)]:
            if row.label == "C5":
                y = x = 0
            r = ask(client, image, row.label, channel, y, x)
            assert r.status_code == 200, r.text
            body = r.json()
            dot = body["dot_product"]
            # every term written out: the sum is the sum of the products of the numbers shown
            products = sum(float(np.sum(np.array(t["kernel"]) * np.array(t["patch"]))) for t in dot["terms"])
            assert products + (dot["rest"]["sum"] if dot["rest"] else 0.0) == pytest.approx(dot["sum"])
            assert dot["z"] == pytest.approx(dot["sum"] + dot["bias"])
            (act,) = [a["type"] for a in body["activation"]]
            expected = forward_value(session, image, row.node, channel, y, x)
            assert ACTIVATIONS[act](dot["z"]) == pytest.approx(expected, abs=1e-5)
            assert dot["after"] == pytest.approx(expected, abs=1e-5)
            assert body["value"] == pytest.approx(expected, abs=1e-6)


def test_lenet5_c3_reads_the_maps_table_i_connects(image):
    session = _session("lenet5")
    client = TestClient(create_app(session))
    for channel in range(16):
        dot = ask(client, image, "C3", channel, 2, 3).json()["dot_product"]
        assert dot["connected"] == list(LENET5_C3_TABLE[channel])
        assert [t["input_channel"] for t in dot["terms"]] == list(LENET5_C3_TABLE[channel])
        assert dot["table"] == "LeCun et al. 1998, Table I"


def test_receptive_field_box_is_the_analyzers(served, image):
    session, client = served
    s = cnnzoo.summary(session.model, session.input_size)
    rfs = {layer.name: layer.receptive_field for layer in s.layers}
    _, h, w = session.input_size
    for row in layer_rows(session.model)[:4]:
        body = ask(client, image, row.label, 1, 2, 3).json()
        rf = rfs[row.node]
        got = body["receptive_field"]
        assert got["size"] == list(rf.size) and got["jump"] == list(rf.jump)
        top = rf.start[0] + 2 * rf.jump[0] - rf.size[0] / 2
        left = rf.start[1] + 3 * rf.jump[1] - rf.size[1] / 2
        assert got["box"] == [top, left, top + rf.size[0], left + rf.size[1]]
        assert got["clipped"] == [
            max(0, top),
            max(0, left),
            min(h, top + rf.size[0]),
            min(w, left + rf.size[1]),
        ]


def test_gradient_is_nonzero_exactly_inside_the_receptive_field():
    """LeNet-5 (tanh everywhere, average subsampling): every input pixel of the theoretical receptive
    field changes the neuron, and no pixel outside it does."""
    session = _session("lenet5")
    client = TestClient(create_app(session))
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(buf, format="PNG")
    for label, channel, y, x in [
        ("C1", 0, 0, 0),
        ("C1", 3, 12, 20),
        ("S2", 1, 6, 9),
        ("C3", 7, 4, 1),
        ("S4", 15, 2, 3),
        ("C5", 100, 0, 0),
    ]:
        body = ask(client, buf.getvalue(), label, channel, y, x).json()
        top, left, bottom, right = body["receptive_field"]["clipped"]
        g = body["gradient"]
        assert g["of"] == "value"
        assert g["box"] == [top, left, bottom, right], label
        assert g["nonzero"] == (bottom - top) * (right - left), label  # every pixel inside, none outside


def test_bad_requests_are_one_line(image):
    client = TestClient(create_app(_session("lenet5")))
    r = ask(client, image, "C9", 0)
    assert r.status_code == 400 and "no layer 'C9'" in r.json()["error"] and "C3" in r.json()["error"]
    r = ask(client, image, "C1", 6, 0, 0)
    assert r.status_code == 400 and "C1 is 6×28×28" in r.json()["error"]
    r = ask(client, image, "C1", 0, 28, 0)
    assert r.status_code == 400
    r = client.post("/api/neuron", data={"layer": "C1", "channel": "0"})
    assert r.status_code == 422
    r = ask(client, b"not an image", "C1", 0)
    assert r.status_code == 400 and "unreadable image" in r.json()["error"]
    assert ask(client, image, "C1", 0).status_code == 200  # and the server keeps serving


def test_a_fully_connected_unit_shows_its_weighted_sum(served, image):
    session, client = served
    modules = dict(session.model.named_modules())
    for row in [r for r in layer_rows(session.model) if r.kind == "Linear"]:
        for unit in (0, 5):
            body = ask(client, image, row.label, unit).json()
            dot = body["dot_product"]
            assert dot is not None and dot["kind"] == "linear", row.label
            linear = modules[row.head]
            assert dot["inputs"] == linear.in_features
            written = float(np.dot(dot["weights"], dot["values"]))
            assert written + (dot["rest"]["sum"] if dot["rest"] else 0.0) == pytest.approx(dot["sum"])
            assert dot["weights"] == pytest.approx(
                linear.weight.detach()[unit, : len(dot["weights"])].tolist()
            )
            assert dot["bias"] == pytest.approx(float(linear.bias.detach()[unit]))
            # torch's own layer, on the input the feature extractor saw: z is its output for this unit
            prepared = session.prepare(Image.open(io.BytesIO(image)), "no")
            before = FeatureExtractor(session.model, [row.head])(prepared.x)[row.head][0]
            assert dot["z"] == pytest.approx(float(before.flatten()[unit]), abs=1e-5)
            expected = forward_value(session, image, row.node, unit, 0, 0)
            assert dot["after"] == pytest.approx(expected, abs=1e-5)
            assert body["value"] == pytest.approx(expected, abs=1e-6)
