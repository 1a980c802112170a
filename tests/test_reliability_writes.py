"""Writes never destroy what they replace, and weights files are bounded before they are inflated.

An export refuses to overwrite the run it reads, a device node, a FIFO, a directory or a symlink (one line,
exit 2); ``--out ""`` and a name that is not UTF-8 are handled; two writers of one name never share a
temporary file (threads here, two real ``cnnzoo weights import`` processes below); a ``.pth`` zip whose
entries inflate past what the model can need is refused from its central directory, before torch reads it.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from cli_harness import MODEL, assert_clear_error, cli, run_cli

import cnnzoo
from cnnzoo import checkpoint as ckpt
from cnnzoo.atomic import atomic_write
from cnnzoo.errors import CheckpointError, CnnzooError
from cnnzoo.weights.files import load_state_dict, max_file_bytes


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("writes") / "run"
    meta = ckpt.CheckpointMeta(
        model=MODEL,
        model_kwargs={"num_classes": 10, "in_channels": 1},
        input_size=[1, 28, 28],
        classes=[str(i) for i in range(10)],
        epoch=1,
    )
    ckpt.save_checkpoint(path, cnnzoo.create_model(MODEL), meta, {"epoch": 1, "history": []})
    return path


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


@pytest.mark.parametrize("fmt", ["safetensors", "torchscript"])
@pytest.mark.parametrize("name", [ckpt.WEIGHTS, ckpt.META, ckpt.TRAIN_STATE])
def test_export_never_overwrites_the_run_it_reads(capsys, run, fmt, name):
    before = _digests(run)
    code, _, err = cli(capsys, "export", run, "--format", fmt, "--out", run / name)
    assert_clear_error(code, err, "export", name, "refusing to overwrite")
    assert _digests(run) == before


def test_export_of_a_bare_safetensors_never_overwrites_it(capsys, tmp_path, run):
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes((run / ckpt.WEIGHTS).read_bytes())
    link = tmp_path / "same.safetensors"
    code, _, err = cli(capsys, "export", bare, "--format", "safetensors", "--out", bare)
    assert_clear_error(code, err, "export", "refusing to overwrite")
    link.hardlink_to(bare)  # another name for the same file
    code, _, err = cli(capsys, "export", bare, "--format", "safetensors", "--out", link)
    assert_clear_error(code, err, "export", "refusing to overwrite")
    assert bare.read_bytes() == (run / ckpt.WEIGHTS).read_bytes()


def test_export_refuses_devices_fifos_directories_and_symlinks(capsys, tmp_path, run):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "link.safetensors"
    link.symlink_to(target)
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    for out, kind in [
        ("/dev/null", "a device"),
        (fifo, "a FIFO"),
        (tmp_path, "a directory"),
        (link, "a symlink"),
    ]:
        code, _, err = cli(capsys, "export", run, "--format", "safetensors", "--out", out)
        assert_clear_error(code, err, "export", kind)
    assert link.is_symlink() and target.read_text() == "keep me" and fifo.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "link.safetensors",
        "pipe.safetensors",
        "precious.txt",
    ]
    code, _, err = cli(capsys, "export", run, "--format", "safetensors", "--out", "")
    assert_clear_error(code, err, "export", "--out is empty")


@pytest.mark.slow
def test_export_to_a_name_that_is_not_utf8(tmp_path, run):
    name = os.fsdecode(b"model-\xff.onnx")  # a surrogate escape
    proc = run_cli("export", run, "--format", "onnx", "--out", name, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "model-\\xff.onnx" in proc.stdout
    assert os.listdir(os.fsencode(tmp_path)) == [b"model-\xff.onnx"]  # the file, and no temporary one


def test_two_writers_of_one_name_never_collide(tmp_path):
    path, errors = tmp_path / "out.bin", []
    payloads = [bytes([k]) * 200_000 for k in range(4)]

    def write(data: bytes) -> None:
        for _ in range(40):
            try:
                atomic_write(path, data, fsync=False)
            except CnnzooError as e:
                errors.append(str(e))

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert path.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # every temporary file went


@pytest.fixture(scope="module")
def resnet18_pth(tmp_path_factory) -> Path:
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("pth") / "mine.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


@pytest.mark.slow
def test_concurrent_weights_imports_never_leave_an_empty_store(tmp_path, resnet18_pth):
    from safetensors.torch import load_file

    env = os.environ | {"OMP_NUM_THREADS": "1", "CNNZOO_WEIGHTS": str(tmp_path / "store")}
    cmd = [sys.executable, "-m", "cnnzoo", "weights", "import", "resnet18", str(resnet18_pth)]
    expected = torch.load(resnet18_pth, weights_only=True)
    for _ in range(2):
        procs = [
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        results = [(p.wait(300), *p.communicate()) for p in procs]
        assert [code for code, _, _ in results] == [0, 0], results
        stored = sorted((tmp_path / "store" / "resnet18").iterdir())
        assert [p.suffix for p in stored] == [".json", ".safetensors"], stored  # the pair, no temporary file
        tensors = load_file(stored[1])
        assert all(torch.equal(tensors[k], v) for k, v in expected.items())


def _zip_bomb(path: Path, inflated: int) -> None:
    """A torch.save zip of one state dict whose single tensor is ``inflated`` bytes of zeros, deflated."""
    buf = io.BytesIO()
    torch.save({"conv1.weight": torch.zeros(inflated // 4, dtype=torch.float32)}, buf)
    with (
        zipfile.ZipFile(buf) as src,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))


def test_zip_bomb_is_refused_before_any_entry_is_read(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.pth"
    _zip_bomb(bomb, 64 << 20)
    assert bomb.stat().st_size < 1 << 20  # 64 MiB of tensor in under 1 MiB of file

    def never(*args, **kw):
        raise AssertionError("torch.load was reached")

    monkeypatch.setattr(torch, "load", never)
    with pytest.raises(CheckpointError, match=r"inflate to [\d,]+ bytes, more than the [\d,]+"):
        load_state_dict(bomb, max_file_bytes(MODEL))


@pytest.mark.slow
def test_weights_import_of_a_zip_bomb_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNZOO_WEIGHTS", str(tmp_path / "store"))
    bomb = tmp_path / "bomb.pth"
    _zip_bomb(bomb, 256 << 20)  # resnet18 may inflate to 2 × 46.8 MB + 16 MiB
    proc = run_cli("weights", "import", "resnet18", bomb)
    line = assert_clear_error(proc.returncode, proc.stderr, "weights", "bomb.pth", "inflate")
    assert "268,4" in line  # the inflated size, from the central directory


def test_safetensors_header_length_2_63_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNZOO_WEIGHTS", str(tmp_path / "store"))
    bad = tmp_path / "huge.pth"
    bad.write_bytes((1 << 63).to_bytes(8, "little") + b'{"a": 1}' + bytes(64))
    code, _, err = cli(capsys, "weights", "import", "resnet18", bad)
    assert_clear_error(code, err, "weights", "huge.pth", "header")


def test_weights_file_that_is_not_a_regular_file_says_what_it_is(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNZOO_WEIGHTS", str(tmp_path / "store"))
    zero = tmp_path / "zero.pth"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.pth"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.pth"
    folder.mkdir()
    for path, says in [
        (zero, "not a regular file"),
        (fifo, "not a regular file"),
        (folder, "is a directory"),
    ]:
        code, _, err = cli(capsys, "weights", "import", "resnet18", path)
        line = assert_clear_error(code, err, "weights", path.name, says)
        assert "no such file" not in line
        code, _, err = cli(
            capsys,
            "export",
            "resnet18",
            "--weights",
            path,
            "--format",
            "safetensors",
            "--out",
            tmp_path / "x.safetensors",
        )
        assert_clear_error(code, err, "export", path.name, says)
