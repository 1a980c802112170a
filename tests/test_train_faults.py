"""Reliability: kill -9 mid-run, NaN loss, unwritable output directory."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import fashion_available

import cnnzoo
from cnnzoo import checkpoint as ckpt
from cnnzoo.cli import main
from cnnzoo.data import ImageDataset, channel_stats
from cnnzoo.train import DivergedError


def synthetic(n_train=256, n_test=64) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_train + n_test, 1, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    mean, std = channel_stats(x[:n_train])
    return ImageDataset(
        "noise", x[:n_train], y[:n_train], x[n_train:], y[n_train:], list("abcdefghij"), mean, std
    )


def _assert_intact(out) -> int:
    """The run directory holds a whole checkpoint (or none yet); returns its epoch."""
    if not any((out / n).exists() for n in ("checkpoint.json", "checkpoint.json.pending")):
        return 0
    model, meta = ckpt.load_checkpoint(out)  # raises on any torn file
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert ckpt.load_train_state(out)["epoch"] == meta.epoch
    return meta.epoch


@pytest.mark.slow
@pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST files not found")
def test_kill_9_at_random_moments_then_resume_finishes(tmp_path):
    out = tmp_path / "run"
    epochs = 40  # enough that three kills (each after >= 1 new epoch + <= 1.5 s) come before the end
    fixed = "-m cnnzoo train lenet5_modern --limit 640 --batch-size 64 --quiet --threads 1 --seed 3".split()
    cmd = [sys.executable, *fixed, "--epochs", str(epochs), "--out", str(out)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    rng = random.Random(int(os.environ.get("CNNZOO_KILL_SEED", "12345")))
    seen = []
    metrics = out / "metrics.jsonl"

    def epochs_done() -> int:
        return len(metrics.read_text().splitlines()) if metrics.exists() else 0

    for attempt in range(3):
        before = epochs_done()
        proc = subprocess.Popen(
            cmd + (["--resume"] if attempt else []),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.time() + 120
        while epochs_done() <= before and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)  # wait until this process has trained (and checkpointed) at least one epoch
        time.sleep(rng.uniform(0.0, 1.5))  # then a random moment: mid-step, mid-evaluation or mid-checkpoint
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the kill: {proc.stderr.read().decode()[-500:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen.append(_assert_intact(out))
    assert seen == sorted(seen) and seen[0] > 0  # never went backwards
    done = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["epochs"] == epochs
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(1, epochs + 1))
    assert _assert_intact(out) == epochs


@pytest.mark.slow
@pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST files not found")
def test_sigterm_stops_a_run_that_ignores_ctrl_c(tmp_path):
    """A run launched by a process that a script started in the background inherits SIGINT ignored (POSIX
    shells do that to background jobs): the web app's Stop sends SIGTERM, which ends it like Ctrl-C."""
    out = tmp_path / "run"
    fixed = "-m cnnzoo train --limit 640 --batch-size 64 --epochs 200 --quiet --threads 1".split()
    cmd = [sys.executable, *fixed, "--out", str(out)]
    ignoring = "import signal, subprocess, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    ignoring += f"sys.exit(subprocess.call({cmd!r}))"  # SIG_IGN is inherited across exec
    proc = subprocess.Popen([sys.executable, "-c", ignoring], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "metrics.jsonl").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()[-500:]
        train = next(p for p in _children(proc.pid))
        os.kill(train, signal.SIGINT)  # ignored: the run goes on
        time.sleep(1.0)
        assert proc.poll() is None
        os.kill(train, signal.SIGTERM)
        assert proc.wait(timeout=30) == 130  # `cnnzoo train`'s exit status for an interrupted run
    finally:
        proc.kill()
    assert "interrupted" in proc.stderr.read()
    assert 1 <= _assert_intact(out) < 200 and not (out / "result.json").exists()


def _children(pid: int) -> list[int]:
    return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5_modern")
    forward, calls = model.forward, []

    def poisoned(x):  # fine for epoch 1 (4 steps), NaN from the middle of epoch 2 on
        calls.append(1) if model.training else None
        y = forward(x)
        return y * float("nan") if len(calls) > 6 else y

    model.forward = poisoned
    with pytest.raises(DivergedError) as e:
        cnnzoo.fit(
            model,
            synthetic(),
            epochs=3,
            batch_size=64,
            validation_split=0,
            out=str(tmp_path),
            progress="quiet",
        )
    msg = str(e.value)
    assert "nan" in msg and "epoch 2" in msg and "epoch 1" in msg and "\n" not in msg
    assert _assert_intact(tmp_path) == 1


def test_unwritable_out_fails_before_training(tmp_path, capsys, monkeypatch):
    import cnnzoo.data

    monkeypatch.setattr(cnnzoo.data, "load_dataset", lambda name, data_dir=None: synthetic())
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    t0 = time.perf_counter()
    code = main(["train", "--epochs", "50", "--out", str(blocker / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "cannot create output directory" in err, err
    assert time.perf_counter() - t0 < 30  # it did not train 50 epochs first


def test_full_disk_at_checkpoint_time_is_a_clear_error(tmp_path, monkeypatch):
    """ENOSPC while writing a checkpoint: a CheckpointError naming the file; the previous one stays whole."""
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5_modern")
    cnnzoo.fit(model, synthetic(), epochs=1, batch_size=64, out=str(tmp_path), progress="quiet")
    real_fsync, calls = os.fsync, []

    def fsync(fd):  # the start-up probe passes; the disk is full when the next checkpoint is written
        calls.append(fd)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(ckpt.os, "fsync", fsync)
    with pytest.raises(ckpt.CheckpointError, match=r"model\.safetensors.*No space left"):
        cnnzoo.fit(
            model, synthetic(), epochs=2, batch_size=64, out=str(tmp_path), resume=True, progress="quiet"
        )
    monkeypatch.undo()
    assert _assert_intact(tmp_path) == 1
    assert not list(tmp_path.glob("*.pending"))
