"""Bounded before allocated: a batch the machine cannot hold is refused before a run starts (with the
estimate and the limit), progress is served in bounded pages, and a dataset's ``size=`` has a range.
The training-memory estimate is compared with the peak memory a real training step takes (``ru_maxrss``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_harness import assert_clear_error, cli
from webclient import FASHION

from cnnzoo.train.memory import check_train_memory
from cnnzoo.train.snapshots import PROGRESS, SNAPSHOTS
from cnnzoo.web.train_jobs import PAGE_BYTES

needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not at /usr/share/datasets")


@pytest.fixture
def client(tmp_path):
    from fastapi.testclient import TestClient

    from cnnzoo.web import create_app, load_session

    runs = tmp_path / "runs"
    runs.mkdir()
    app = create_app(load_session(None, runs))
    app.state.runs_dir = str(runs)
    with TestClient(app) as c:
        c.runs = runs
        yield c


@needs_fashion
def test_train_api_refuses_a_batch_the_machine_cannot_hold(client):
    form = {"model": "resnet110", "dataset": "fashion-mnist", "epochs": "10000", "batch_size": "65536"}
    r = client.post("/api/train/start", data=form)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert "batch size 65536" in error and "GiB" in error and "available" in error
    assert list(client.runs.iterdir()) == [] and client.get("/api/train/state").json()["job"] is None


@needs_fashion
def test_train_cli_refuses_a_batch_the_machine_cannot_hold(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = cli(
        capsys,
        "train",
        "resnet110",
        "--batch-size",
        "65536",
        "--limit",
        "64",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        out,
    )
    assert_clear_error(code, err, "train", "batch size 65536", "GiB")
    assert not (out / "model.safetensors").exists()


def test_memory_check_is_silent_for_an_ordinary_run():
    assert check_train_memory("lenet5_modern", (1, 28, 28), 256) < 100 << 20


def _big_run(runs: Path, lines: int) -> tuple[str, list[dict]]:
    run = runs / "lenet5_modern-fashion-mnist-20260101-000000-0badc0de"
    (run / SNAPSHOTS).mkdir(parents=True)
    (run / SNAPSHOTS / "epoch-001.json").write_text("{}")
    rows = [{"kind": "step", "step": i, "loss": 1.0 / (i + 1), "note": "x" * 60} for i in range(lines)]
    (run / SNAPSHOTS / PROGRESS).write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"half": ')
    return run.name, rows


def test_progress_is_served_in_bounded_pages(client):
    run_id, rows = _big_run(client.runs, 40_000)  # ~4.5 MB
    url, got, offset, pages = f"/api/runs/{run_id}/progress", [], 0, 0
    while True:
        r = client.get(url, params={"offset": offset})
        assert r.status_code == 200 and len(r.content) <= PAGE_BYTES + 4096
        page = r.json()
        got += page["progress"]
        offset, pages = page["offset"], pages + 1
        if not page["more"]:
            break
    assert pages >= 4 and got == rows  # every whole line once, in order; the half-written one left out
    assert client.get(url, params={"offset": -1}).status_code == 422


@pytest.mark.parametrize("size", ["99999", "64x99999", "1025"])
def test_dataset_size_has_a_range(capsys, tmp_path, size):
    code, _, err = cli(capsys, "data", "fetch", f"imagefolder:{tmp_path}?size={size}")
    assert_clear_error(code, err, "data", "out of range", "1..1024")
