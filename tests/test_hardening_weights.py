"""Weights files that lie, through the checkpoint loader and every command that reads one (predict, eval,
export, serve): tensors relabelled to another dtype, NaN weights, a header declaring 10 GB in a small file, a
real sparse 10 GB file, /dev/zero and FIFOs in place of the weights or checkpoint.json, and an input size the
model cannot take or whose activations would pass 1 GiB are each refused with one line, quickly, before the
data is read; a bare .safetensors goes through the same guarded reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hardening_harness import MODEL, _meta, assert_one_line
from hardening_harness import (
    good_run_fixture as good_run_fixture,  # fixtures, found by pytest under their names
)
from hardening_harness import root_fixture as root_fixture
from PIL import Image

import cnnzoo
from cnnzoo import checkpoint as ckpt
from cnnzoo.cli import main
from cnnzoo.errors import CheckpointError

TIMEOUT = 10  # seconds: every refusal below must come well within this


@pytest.fixture(scope="module")
def image(root) -> Path:
    img = Image.new("L", (28, 28), 0)
    img.paste(200, (8, 8, 20, 20))
    img.save(root / "ok.png")
    return root / "ok.png"


def _copy(good_run: Path, dest: Path) -> Path:
    dest.mkdir()
    for name in ("model.safetensors", "checkpoint.json"):
        (dest / name).write_bytes((good_run / name).read_bytes())
    return dest


def _header(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _write_safetensors(path: Path, header: dict, body: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + body)


def _forget_checksum(run: Path) -> None:
    record = json.loads((run / "checkpoint.json").read_text())
    record.pop("weights_sha256", None)
    (run / "checkpoint.json").write_text(json.dumps(record))


def _set_input_size(run: Path, size: list[int]) -> None:
    record = json.loads((run / "checkpoint.json").read_text())
    (run / "checkpoint.json").write_text(json.dumps(record | {"input_size": size}))


# --- the hostile weights files ----------------------------------------------------------------------------


def relabelled_i32(good_run: Path, dest: Path) -> Path:
    """Every F32 tensor relabelled I32: same shapes, same byte sizes."""
    run = _copy(good_run, dest)
    header, body = _header(run / "model.safetensors")
    for name, entry in header.items():
        if name != "__metadata__" and entry["dtype"] == "F32":
            entry["dtype"] = "I32"
    _write_safetensors(run / "model.safetensors", header, body)
    _forget_checksum(run)
    return run


def non_finite(good_run: Path, dest: Path) -> Path:
    model = cnnzoo.create_model(MODEL)
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    return ckpt.save_checkpoint(dest, model, _meta())


def lying_size(good_run: Path, dest: Path) -> Path:
    """A 10 GB tensor declared in a file of a few hundred KB."""
    run = _copy(good_run, dest)
    header, body = _header(run / "model.safetensors")
    name = next(k for k in header if k != "__metadata__")
    begin = header[name]["data_offsets"][0]
    header[name]["shape"] = [10 * 2**30 // 4]
    header[name]["data_offsets"] = [begin, begin + 10 * 2**30]
    _write_safetensors(run / "model.safetensors", header, body)
    _forget_checksum(run)
    return run


def sparse_huge(good_run: Path, dest: Path) -> Path:
    """A real (sparse) 10 GB file whose header is consistent with it, but not with the model."""
    run = _copy(good_run, dest)
    header = {
        "__metadata__": _header(good_run / "model.safetensors")[0]["__metadata__"],
        "c1.weight": {"dtype": "F32", "shape": [10 * 2**30 // 4], "data_offsets": [0, 10 * 2**30]},
    }
    raw = json.dumps(header).encode()
    with open(run / "model.safetensors", "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        f.truncate(8 + len(raw) + 10 * 2**30)
    _forget_checksum(run)
    return run


def dev_zero(good_run: Path, dest: Path) -> Path:
    run = _copy(good_run, dest)
    (run / "model.safetensors").unlink()
    (run / "model.safetensors").symlink_to("/dev/zero")
    return run


def fifo(good_run: Path, dest: Path) -> Path:
    run = _copy(good_run, dest)
    (run / "model.safetensors").unlink()
    os.mkfifo(run / "model.safetensors")
    return run


def fifo_json(good_run: Path, dest: Path) -> Path:
    run = _copy(good_run, dest)
    (run / "checkpoint.json").unlink()
    os.mkfifo(run / "checkpoint.json")
    return run


IN_PROCESS = {
    "relabelled-i32": (relabelled_i32, "I32"),
    "non-finite": (non_finite, "NaN"),
    "lying-size": (lying_size, "bytes"),
    "sparse-10GB": (sparse_huge, "do not fit"),
}
SPECIAL = {"dev-zero": dev_zero, "fifo": fifo, "fifo-json": fifo_json}


def _argv(command: str, run: Path, image: Path, root: Path) -> list[str]:
    return {
        "predict": ["predict", run, image],
        "eval": ["eval", run, "--dataset", "mnist", "--data-dir", root / "no-data"],
        "export": ["export", run, "--out", root / f"out-{run.name}.onnx"],
        "serve": ["serve", "--checkpoint", run, "--port", "0"],
    }[command]


@pytest.mark.parametrize("case", IN_PROCESS)
def test_hostile_weights_are_refused_by_load_checkpoint(root, good_run, case):
    make, word = IN_PROCESS[case]
    run = make(good_run, root / f"load-{case}")
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError) as e:
        ckpt.load_checkpoint(run)
    assert time.perf_counter() - t0 < TIMEOUT
    assert word in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("command", ["predict", "eval", "export", "serve"])
@pytest.mark.parametrize("case", IN_PROCESS)
def test_hostile_weights_are_one_line_for_every_command(
    capsys, monkeypatch, root, good_run, image, case, command
):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("served a hostile checkpoint"))
    make, word = IN_PROCESS[case]
    run = make(good_run, root / f"{command}-{case}")
    t0 = time.perf_counter()
    code = main([str(a) for a in _argv(command, run, image, root)])
    _, err = capsys.readouterr()
    assert time.perf_counter() - t0 < TIMEOUT
    assert_one_line(code, err, command, word)


@pytest.mark.parametrize(
    "command", ["predict", "eval", "export", pytest.param("serve", marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("case", SPECIAL)
def test_device_and_fifo_weights_end_at_once(root, good_run, image, case, command):
    """In a subprocess, so that a regression cannot take the test run down: /dev/zero would be read until the
    OOM killer came, and a FIFO would hang."""
    run = SPECIAL[case](good_run, root / f"{command}-{case}")
    argv = [sys.executable, "-m", "cnnzoo", *map(str, _argv(command, run, image, root))]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT + 20)  # startup ~3 s
    assert_one_line(proc.returncode, proc.stderr, command, "not a regular file")
    assert "open http" not in proc.stdout


def test_sparse_file_is_refused_before_it_is_read(root, good_run):
    """The 10 GB are refused from the header: far faster than reading them, and no memory used."""
    import resource

    run = sparse_huge(good_run, root / "sparse-rss")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="do not fit"):
        ckpt.load_checkpoint(run)
    assert time.perf_counter() - t0 < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


def test_dtype_error_names_the_tensor(root, good_run):
    run = relabelled_i32(good_run, root / "i32-named")
    with pytest.raises(CheckpointError, match=r"conv1\.weight is stored as I32, the model's is F32"):
        ckpt.load_checkpoint(run)


@pytest.mark.parametrize(
    "size, word",
    [
        ([3, 28, 28], "3 channel(s), the model takes 1"),
        ([1, 8192, 8192], "cannot take"),
        ([64, 8192, 8192], "channel(s)"),
    ],
)
@pytest.mark.parametrize("command", ["predict", "export", "serve"])
def test_input_size_the_model_cannot_take(capsys, monkeypatch, root, good_run, image, size, word, command):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("served a bad checkpoint"))
    run = _copy(good_run, root / f"size-{command}-{size[0]}-{size[1]}")
    _set_input_size(run, size)
    argv = _argv(command, run, image, root)
    if command == "export":
        argv += ["--format", "torchscript"]
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    assert_one_line(code, err, command, word)


def test_activation_cap_on_a_model_that_takes_any_size():
    """ResNet's global pooling takes any size; [1, 8192, 8192] would make a 16 GiB first feature map."""
    from cnnzoo.fitcheck import MAX_ACTIVATION_BYTES, check_input_size

    with torch.device("meta"):
        model = cnnzoo.create_model("resnet18", num_classes=10, in_channels=1)
    assert check_input_size(model, (1, 224, 224), "r") == 10
    with pytest.raises(CheckpointError, match="GiB per image"):
        check_input_size(model, (1, 8192, 8192), "r")
    assert MAX_ACTIVATION_BYTES == 1 << 30


def test_bare_safetensors_is_read_through_the_guarded_reader(root, good_run):
    """The weights package's reader, and export's, refuse the same files."""
    from cnnzoo.export import load_safetensors
    from cnnzoo.weights.files import load_state_dict

    for make in (lying_size, dev_zero):
        run = make(good_run, root / f"bare-{make.__name__}")
        for read in (load_state_dict, load_safetensors):
            with pytest.raises(CheckpointError):
                read(run / "model.safetensors")
