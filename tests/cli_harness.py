"""The harness of the hostile-input CLI tests: ``cnnzoo ARGV`` in-process and as a real subprocess, the
one-line error check (exit 2, one ``cnnzoo CMD: error:`` line naming the file), hypothesis settings for the
fuzz tests, and module-scoped fixtures for a whole good run directory and a valid image to damage or feed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings
from PIL import Image

import cnnzoo
from cnnzoo import checkpoint as ckpt
from cnnzoo.cli import main

# A larger run for docs/reliability.md: CNNZOO_FUZZ_EXAMPLES=1000 pytest tests/test_reliability_images.py
# tests/test_reliability_checkpoints.py tests/test_reliability_datasets.py
EXAMPLES = int(os.environ.get("CNNZOO_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=30_000,  # a hang fails the example; generous for a loaded 2-core machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
RAN: dict[str, int] = {}  # fuzz cases per target, printed at the end (the figures of docs/reliability.md)
MODEL = "lenet5_modern"  # 61k parameters: (1, 28, 28) -> 10 classes, fast to build
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
needs_fashion = pytest.mark.skipif(
    not all((FASHION_DIR / f).is_file() for f in FASHION_FILES), reason="Fashion-MNIST files not found"
)


def _count(target: str) -> None:
    RAN[target] = RAN.get(target, 0) + 1


# ----------------------------------------------------------------------------------------- harness


def cli(capsys, *argv) -> tuple[int, str, str]:
    """``cnnzoo ARGV`` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()  # drop anything earlier
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clear_error(code: int, err: str, command: str, *names) -> str:
    """Exit code 2 and exactly one ``cnnzoo COMMAND: error: ...`` line naming ``names``; returns it.

    Other stderr lines may only be warnings (a model name instead of a checkpoint prints one; rich wraps it)."""
    assert "Traceback" not in err, err
    assert code == 2, f"exit code {code}: {err}"
    lines = [line for line in err.strip().splitlines() if line.startswith("cnnzoo ")]
    assert len(lines) == 1 and lines[0].startswith(f"cnnzoo {command}: error: "), err
    assert err.strip().endswith(lines[0]), f"the error is not the last thing printed: {err}"
    for name in names:
        assert str(name) in lines[0], f"{name} not named in: {lines[0]}"
    return lines[0]


def run_cli(*argv, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """The real ``python -m cnnzoo ARGV`` in a fresh process (one torch thread)."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "cnnzoo", *map(str, argv)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)


def assert_clear_error_proc(proc: subprocess.CompletedProcess, command: str, *names) -> str:
    return assert_clear_error(proc.returncode, proc.stderr, command, *names)


# ----------------------------------------------------------------------------------------- fixtures
# Imported by the test modules that use them; each module gets its own (module scope).


def _meta(**changes) -> ckpt.CheckpointMeta:
    """MODEL's checkpoint record, with ``changes`` (any field, the model's too)."""
    record = dict(
        model=MODEL,
        model_kwargs={"num_classes": 10, "in_channels": 1},
        input_size=[1, 28, 28],
        dataset="fashion-mnist",
        classes=[f"class{i}" for i in range(10)],
        mean=[0.286],
        std=[0.353],
        epoch=1,
    )
    return ckpt.CheckpointMeta(**(record | changes))


@pytest.fixture(scope="module", name="root")
def root_fixture(tmp_path_factory) -> Path:
    yield tmp_path_factory.mktemp("reliability")
    print(f"\nreliability fuzz cases run: {RAN}")


@pytest.fixture(scope="module", name="good_run")
def good_run_fixture(root) -> Path:
    """A whole checkpoint as `cnnzoo train` writes it (weights, checkpoint.json, train_state.pt)."""
    torch.manual_seed(0)
    run = root / "good-run"
    ckpt.save_checkpoint(run, cnnzoo.create_model(MODEL), _meta(), {"epoch": 1, "history": []})
    return run


@pytest.fixture(scope="module", name="image")
def image_fixture(root) -> Path:
    """A valid 28×28 grayscale PNG: a light square on black, like a Fashion-MNIST item."""
    img = Image.new("L", (28, 28), 0)
    img.paste(200, (8, 8, 20, 20))
    path = root / "ok.png"
    img.save(path)
    return path
