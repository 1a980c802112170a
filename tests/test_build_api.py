"""The Build page's API: a layer string's table, its tokens and, for a net that does not work, why, checked
against torch's own modules (the counts, and which inputs a net runs on) rather than our own figures."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

SEED_004 = "1x28x28-32C3-MP2-64C3-MP2-128C3-MP2-64N-10N"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from cnnzoo.web import create_app, load_session

    app = create_app(load_session(None, tmp_path_factory.mktemp("runs")))
    return TestClient(app)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_check_counts_seed_004_as_torch_does(client):
    r = client.get("/api/build/check", params={"net": SEED_004})
    assert r.status_code == 200 and "analyze;dur=" in r.headers["server-timing"]
    body = r.json()
    torch_net = nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128, 64),
        nn.Linear(64, 10),
    )
    assert body["ok"] and body["summary"]["total"]["params"] == params(torch_net) == 101_578
    # one entry per token of the text, in order, with its span and the table rows it makes
    tokens = body["tokens"]
    assert [SEED_004[a:b] for a, b in (t["span"] for t in tokens)] == SEED_004.split("-")[1:]
    assert tokens[0]["rows"] == ["conv1", "relu1"] and tokens[0]["kernel"] == 3
    names = {row["name"] for row in body["summary"]["layers"]}
    assert {n for t in tokens for n in t["rows"]} <= names


def test_input_replaces_the_strings(client):
    body = client.get("/api/build/check", params={"net": SEED_004, "input": "3x32x32"}).json()
    assert body["ok"] and body["input"] == [3, 32, 32] and body["net"].startswith("3x32x32-32C3")


def smallest_side(net: nn.Module) -> int:
    for side in range(1, 300):
        try:
            net(torch.zeros(1, 1, side, side))
        except RuntimeError:
            continue
        return side
    raise AssertionError("no side works")


def test_a_collapse_names_the_layer_the_formula_and_the_smallest_input(client):
    text = "1x28x28-32C5-MP2-64C5-MP2-128C5-MP2-64N-10N"
    body = client.get("/api/build/check", params={"net": text}).json()
    assert body["ok"] is False
    e = body["error"]
    assert text[e["position"] : e["position"] + e["length"]] == "128C5"
    convs = nn.Sequential(nn.Conv2d(1, 32, 5), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5), nn.MaxPool2d(2))
    side = convs(torch.zeros(1, 1, 28, 28)).shape[-1]  # what conv3 gets: 4
    with pytest.raises(RuntimeError):
        nn.Conv2d(64, 128, 5)(torch.zeros(1, 64, side, side))
    assert e["collapse"]["layer"] == "conv3" and e["collapse"]["input_side"] == side
    assert e["collapse"]["formula"].endswith(f"⌊({side} + 2·0 − 1·(5 − 1) − 1)/1⌋ + 1 = 0")
    whole = nn.Sequential(*convs, nn.Conv2d(64, 128, 5), nn.MaxPool2d(2))
    n = smallest_side(whole)
    assert e["collapse"]["smallest_input"] == f"1x{n}x{n}"


@pytest.mark.parametrize(
    "net, cap",
    [
        ("3x1024x1024-4096C3p1*4-10N", "MAX_FEATURE_ELEMENTS"),
        ("1x28x28-16384N-16384N-10N", "MAX_PARAMS"),
        ("1x28x28-" + "-".join(["8C3p1"] * 301) + "-10N", "MAX_LAYERS"),
    ],
)
def test_caps_are_one_line_naming_the_cap(client, net, cap):
    body = client.get("/api/build/check", params={"net": net}).json()
    assert body["ok"] is False and cap in body["error"]["reason"] and "\n" not in body["error"]["reason"]


def test_a_string_is_never_executed(client):
    body = client.get("/api/build/check", params={"net": "1x28x28-__import__('os').system('true')"}).json()
    assert body["ok"] is False and "unknown layer" in body["error"]["reason"]


def test_explain_takes_a_layer_string(client):
    r = client.get(
        f"/api/explain/{SEED_004.replace('32C3', '32C5')}", params={"layer": "conv1", "field": "params"}
    )
    assert r.status_code == 200, r.json()
    line = r.json()["explanations"][0]["lines"][0]
    assert line["filled"] == f"(5·5·1 + 1)·32 = {params(nn.Conv2d(1, 32, 5))}"


def test_starts_offer_the_seeds_and_zoo_nets_that_read_back(client):
    nets = client.get("/api/build/starts").json()["nets"]
    assert {n["group"] for n in nets} == {"empty", "seed", "zoo"}
    for n in nets:
        assert client.get("/api/build/check", params={"net": n["net"]}).json()["ok"], n


def test_train_start_refuses_a_bad_layer_string_in_one_line(client):
    from webclient import FASHION

    if not FASHION.is_dir():
        pytest.skip("Fashion-MNIST not at /usr/share/datasets")
    r = client.post("/api/train/start", data={"model": "1x28x28-32C3-10X", "dataset": "fashion-mnist"})
    assert r.status_code == 422
    err = r.json()["error"]
    assert "\n" not in err and "unknown layer '10X'" in err
