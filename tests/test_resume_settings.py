"""A run resumes with the settings that shape its optimizer state and its schedule, or not at all: another
optimizer (whose state SGD's would not fit, or would fit wrongly), other parameter groups, another schedule
or another learning rate (which the restored state would overwrite) is one line naming the settings, from Python and from the CLI, with every file of the run as it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import fashion_available, synthetic

import cnnzoo
from cnnzoo.errors import CheckpointError

SMALL = dict(epochs=1, batch_size=64, threads=1, progress=False, seed=0)


def _files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def run(tmp_path) -> Path:
    out = tmp_path / "run"
    cnnzoo.fit("lenet5_modern", synthetic(n_train=256, n_test=64), out=out, optimizer="sgd", **SMALL)
    return out


def test_python_resume_with_another_optimizer_is_refused(run):
    before = _files(run)
    data = synthetic(n_train=256, n_test=64)
    with pytest.raises(CheckpointError, match=r"was trained with optimizer='sgd' \(now 'adam'\)") as e:
        cnnzoo.fit("lenet5_modern", data, out=run, resume=True, optimizer="adam", **SMALL | {"epochs": 2})
    assert "\n" not in str(e.value) and "nothing was changed" in str(e.value)
    assert _files(run) == before
    history = cnnzoo.fit(
        "lenet5_modern", data, out=run, resume=True, optimizer="sgd", **SMALL | {"epochs": 2}
    )
    assert len(history.epochs) == 2  # the same settings resume, after the epoch it had


@pytest.mark.slow
@pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST files not found")
@pytest.mark.parametrize("flag, value", [("--schedule", "cosine"), ("--lr", "0.001")])
def test_cli_resume_with_another_schedule_or_lr_is_one_line(tmp_path, flag, value):
    """A new schedule would run on the old one's counters; a new lr would be overwritten by the restored
    optimizer state while config.json said otherwise."""
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "cnnzoo", "train"]
    small = ["--epochs", "1", "--limit", "320", "--batch-size", "64", "--threads", "1", "--quiet"]
    subprocess.run([*cli, "lenet5_modern", "--out", str(run), *small], check=True, timeout=300)
    before = _files(run)
    proc = subprocess.run([*cli, "--resume", "--out", str(run), flag, value], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert f"was trained with {flag[2:]}=" in line and f"(now {value})" in line.replace("'", "")
    assert _files(run) == before
