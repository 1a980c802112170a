"""A real full disk (a small tmpfs, so ENOSPC comes from the kernel; skipped where mounting is not
permitted): ``cnnzoo export`` onto it leaves neither a partial file nor temporary files, ``cnnzoo train``
refuses at start with one line when the run cannot fit, and a disk that fills mid-run stops the run with one
line, keeps the last checkpoint whole, and ``--resume`` after space is freed logs every epoch once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_harness import MODEL, assert_clear_error, assert_clear_error_proc, needs_fashion, run_cli

from cnnzoo import checkpoint as ckpt


@pytest.fixture
def tiny_disk(tmp_path):
    """A tmpfs of a given size (a real full disk: ENOSPC from the kernel); skipped where mounting is not
    permitted (not root, or a container without CAP_SYS_ADMIN)."""
    mounted = []

    def make(size: str) -> Path:
        d = tmp_path / f"disk-{len(mounted)}"
        d.mkdir()
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True, text=True
        )
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs to simulate a full disk: {r.stderr.strip() or r.returncode}")
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], check=False)


def _fill(disk: Path) -> Path:
    """Write zeros until the filesystem refuses: the disk is now full."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * (64 << 10)
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        small = b"\0" * 512
        try:
            while True:
                f.write(small)
        except OSError:
            pass
    return filler


@pytest.mark.parametrize(
    "fmt",
    [
        pytest.param("onnx", marks=pytest.mark.slow),
        "safetensors",
        pytest.param("torchscript", marks=pytest.mark.slow),
    ],
)
def test_export_onto_a_full_disk_leaves_no_partial_file(tiny_disk, fmt):
    """A real process: torch's C++ file writer can abort the whole interpreter on ENOSPC (torchscript)."""
    disk = tiny_disk("64k")  # LeNet's weights alone are 250 kB
    out = disk / f"model.{fmt}"
    proc = run_cli("export", MODEL, "--format", fmt, "--out", out)
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr[-300:]}"
    assert_clear_error_proc(proc, "export", out)
    assert not out.exists(), "a partial export was left where a good one is expected"
    assert not [p.name for p in disk.iterdir()], "temporary files were left behind"


@needs_fashion
@pytest.mark.slow
def test_train_on_a_full_disk_fails_at_start(tiny_disk):
    disk = tiny_disk("64k")
    t0 = time.perf_counter()
    proc = run_cli(
        "train", MODEL, "--out", disk / "run", "--epochs", "50", "--limit", "640", "--quiet", "--threads", "1"
    )
    line = assert_clear_error_proc(proc, "train", disk / "run")
    assert "space" in line, line
    assert not (disk / "run" / "metrics.jsonl").exists()  # no epoch was trained
    assert time.perf_counter() - t0 < 90


@needs_fashion
@pytest.mark.slow
def test_disk_filling_mid_run_keeps_the_last_checkpoint_and_resumes(tiny_disk):
    """Train, fill the disk as soon as the first checkpoint exists: the run stops with one line, the last
    checkpoint loads, and after space is freed `--resume` finishes the run with every epoch logged."""
    disk = tiny_disk("8m")
    out, epochs = disk / "run", 12
    fixed = "--limit 640 --batch-size 64 --quiet --threads 1 --seed 3".split()
    args = ["train", MODEL, *fixed, "--out", out, "--epochs", epochs]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnzoo", *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 90
    while not (out / "checkpoint.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    filler = _fill(disk)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    if proc.returncode == 0:
        pytest.fail("the run finished before the disk was full (the machine was too fast for the test)")
    assert_clear_error(proc.returncode, err, "train")
    assert "space" in err.lower(), err
    model, meta = ckpt.load_checkpoint(out)  # whole, not torn
    assert 1 <= meta.epoch < epochs
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert ckpt.load_train_state(out)["epoch"] == meta.epoch
    filler.unlink()
    done = run_cli(*args, "--resume", timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))  # no epoch lost, none repeated
    assert ckpt.load_checkpoint(out)[1].epoch == epochs
