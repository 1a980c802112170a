"""Which checkpoint the web app serves and what it says about it: /api/info describes the run, the newest
finished run of any model under the runs folder is chosen (a run still being written is skipped), an empty
folder falls back to an untrained model with a warning, ``cnnzoo serve`` refuses a missing checkpoint with
one line, and the test accuracy shown is the run's own test figure, never the training one."""

from __future__ import annotations

import json
import os

from webclient import FASHION_CLASSES, write_run
from webclient import client_fixture as client_fixture  # fixtures, found by pytest under their names
from webclient import run_dir_fixture as run_dir_fixture

from cnnzoo import cli
from cnnzoo.models import create_model
from cnnzoo.web import load_session
from cnnzoo.web.session import find_latest_run


def test_info_describes_the_checkpoint(client, run_dir):
    info = client.get("/api/info").json()
    assert info["model"] == "lenet5_modern" and info["source"] == str(run_dir)
    assert info["classes"] == FASHION_CLASSES and info["input_size"] == [1, 28, 28]
    assert info["warning"] is None and info["light_on_dark"] is True


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
