"""The explorer API: /api/models lists the registry, /api/summary reproduces LeNet-5's published 60,000
parameters and 340,908 connections (and VGG-16's 138,357,544 parameters), an unknown model name gets a "did
you mean", and nonsense or too small input sizes get a 422 naming the problem, after which a good request
still works."""

from __future__ import annotations

import pytest
from webclient import client_fixture as client_fixture  # fixtures, found by pytest under their names
from webclient import run_dir_fixture as run_dir_fixture

from cnnzoo.models import list_models


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
