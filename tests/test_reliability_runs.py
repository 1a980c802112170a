"""One writer per run directory, with real processes: a second ``train --resume`` is refused while the first
trains; after ``kill -9`` of ``cnnzoo serve`` the restarted server adopts the trainer it left running (shows
it, refuses a second start, stops it); ``--resume`` without training state, or of a checkpoint of a newer
format, refuses and keeps the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cli_harness import assert_clear_error, cli
from helpers import fashion_available
from test_reliability_origin import start_serve

from cnnzoo import checkpoint as ckpt
from cnnzoo.rundir import RunBusyError, lock_holder, run_lock

pytestmark = pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST files not found")
_TRAIN_ARGS = "-m cnnzoo train lenet5_modern --limit 640 --batch-size 64 --quiet --threads 1"
TRAIN = [sys.executable, *_TRAIN_ARGS.split()]
ENV = os.environ | {"OMP_NUM_THREADS": "1"}


def _wait_for(predicate, seconds: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_lock_names_its_holder(tmp_path):
    with run_lock(tmp_path / "run"):
        assert lock_holder(tmp_path / "run") == os.getpid()
        code = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from cnnzoo.rundir import run_lock\nwith run_lock({str(tmp_path / 'run')!r}): pass",
            ],
            capture_output=True,
            text=True,
            env=ENV,
        )
        assert code.returncode == 1 and f"is being trained by pid {os.getpid()}" in code.stderr
    assert lock_holder(tmp_path / "run") is None  # released with the block
    with run_lock(tmp_path / "run"), pytest.raises(RunBusyError):  # one writer, within a process too
        with run_lock(tmp_path / "run"):
            pass


@pytest.mark.slow
def test_second_resume_is_refused_while_the_first_trains(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(
        TRAIN + ["--epochs", "200", "--out", str(out)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: (out / "metrics.jsonl").exists() or first.poll() is not None, what="epoch 1")
        assert first.poll() is None, first.stderr.read()[-500:]
        second = subprocess.run(
            TRAIN + ["--resume", "--out", str(out)], env=ENV, capture_output=True, text=True, timeout=300
        )
        assert_clear_error(second.returncode, second.stderr, "train", f"is being trained by pid {first.pid}")
        assert first.poll() is None  # the first goes on, undisturbed
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)
    assert lock_holder(out) is None


def _post(url: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_restarted_server_adopts_the_trainer_its_crash_left(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    server, url = start_serve(runs)
    try:
        form = "model=lenet5_modern&dataset=fashion-mnist&epochs=300&limit=640"
        request = urllib.request.Request(url + "/api/train/start", data=form.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=60) as r:
            job = json.loads(r.read())
        run = runs / job["id"]
        _wait_for(lambda: (run / ckpt.META).exists(), what="the first epoch's checkpoint")
        trainer = lock_holder(run)
    finally:
        server.send_signal(signal.SIGKILL)  # the crash: the trainer is in its own session and lives on
        server.wait()
    assert os.kill(trainer, 0) is None and lock_holder(run) == trainer
    server, url = start_serve(runs)
    try:
        state = _get(url + "/api/train/state")
        assert state["job"]["id"] == job["id"] and state["job"]["status"] == "running"
        assert _get(url + "/api/info")["source"] != str(run)  # the unfinished run is not served
        code, answer = _post(url + "/api/train/start")
        assert code == 409 and job["id"] in answer["error"]
        code, answer = _post(url + f"/api/runs/{job['id']}/use")
        assert code in (404, 409)  # no snapshot yet, or still training: never served half-trained
        code, stopped = _post(url + "/api/train/stop")
        assert code == 200 and stopped["status"] in ("stopped", "failed")
        assert lock_holder(run) is None
        assert [p.name for p in runs.iterdir()] == [job["id"]]  # never a second run
    finally:
        server.terminate()
        server.wait(30)
        if lock_holder(run):
            os.kill(trainer, signal.SIGKILL)


@pytest.fixture
def trained(tmp_path, capsys) -> Path:
    out = tmp_path / "run"
    code, _, err = cli(
        capsys,
        "train",
        "lenet5_modern",
        "--limit",
        "128",
        "--batch-size",
        "64",
        "--epochs",
        "1",
        "--quiet",
        "--threads",
        "1",
        "--out",
        out,
    )
    assert code == 0, err
    return out


def test_resume_without_train_state_refuses_and_keeps_the_weights(trained, capsys):
    (trained / ckpt.TRAIN_STATE).unlink(missing_ok=True)
    before = _digest(trained / ckpt.WEIGHTS)
    code, _, err = cli(capsys, "train", "--resume", "--out", trained, "--epochs", "2", "--quiet")
    assert_clear_error(code, err, "train", ckpt.TRAIN_STATE, "cannot be resumed")
    assert _digest(trained / ckpt.WEIGHTS) == before


def test_resume_of_a_newer_format_refuses_and_keeps_it(trained, capsys):
    meta = json.loads((trained / ckpt.META).read_text())
    (trained / ckpt.META).write_text(json.dumps(meta | {"format_version": 999}))
    before = {name: _digest(trained / name) for name in (ckpt.WEIGHTS, ckpt.META)}
    code, _, err = cli(capsys, "train", "--resume", "--out", trained, "--epochs", "2", "--quiet")
    assert_clear_error(code, err, "train", "format_version 999")
    assert {name: _digest(trained / name) for name in (ckpt.WEIGHTS, ckpt.META)} == before
