"""Reliability end to end (issue #10): hostile files handed to every command that reads files, through the
real CLI, and a disk that is full from the start or fills up mid-run.

The other reliability tests work on one part each (IDX reader: test_data_fuzz.py, downloads:
test_data_download.py, checkpoints: test_checkpoint.py, kill -9 / NaN: test_train_faults.py, images:
test_image_fuzz.py, bad arguments: test_cli.py). This file checks what a user sees: for any input,
``cnnzoo CMD`` exits 0 (valid input) or 2 with ONE line naming the file or the problem; never exit 1
("internal error"), never a traceback, never a hang, never code from a pickle.

Most cases call the CLI's own entry point in-process (``cnnzoo.cli.main``, ~0.1 s each); a few run
``python -m cnnzoo`` as a subprocess (~4 s each on the shared box) where the process boundary matters:
the malicious pickle, the server that must not start, the full disk.
"""

from __future__ import annotations

import http.server
import json
import os
import pickle
import random
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import cnnzoo
from cnnzoo import checkpoint as ckpt
from cnnzoo.cli import main

# A larger run for docs/reliability.md: CNNZOO_FUZZ_EXAMPLES=1000 pytest tests/test_reliability.py
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


def _meta(**kw) -> ckpt.CheckpointMeta:
    return ckpt.CheckpointMeta(
        model=MODEL,
        model_kwargs={"num_classes": 10, "in_channels": 1},
        input_size=[1, 28, 28],
        dataset="fashion-mnist",
        classes=[f"class{i}" for i in range(10)],
        mean=[0.286],
        std=[0.353],
        epoch=1,
        **kw,
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    yield tmp_path_factory.mktemp("reliability")
    print(f"\nreliability fuzz cases run: {RAN}")


@pytest.fixture(scope="module")
def good_run(root) -> Path:
    """A whole checkpoint as `cnnzoo train` writes it (weights, checkpoint.json, train_state.pt)."""
    torch.manual_seed(0)
    run = root / "good-run"
    ckpt.save_checkpoint(run, cnnzoo.create_model(MODEL), _meta(), {"epoch": 1, "history": []})
    return run


@pytest.fixture(scope="module")
def image(root) -> Path:
    """A valid 28×28 grayscale PNG: a light square on black, like a Fashion-MNIST item."""
    img = Image.new("L", (28, 28), 0)
    img.paste(200, (8, 8, 20, 20))
    path = root / "ok.png"
    img.save(path)
    return path


def noise_dataset(n_train: int = 128, n_test: int = 32):
    """Random 28×28 images and labels: enough for `cnnzoo train` to get to its checkpoint handling."""
    from cnnzoo.data import ImageDataset, channel_stats

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_train + n_test, 1, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    mean, std = channel_stats(x[:n_train])
    classes = [f"class{i}" for i in range(10)]
    return ImageDataset("noise", x[:n_train], y[:n_train], x[n_train:], y[n_train:], classes, mean, std)


def copy_run(good_run: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(good_run, dest)
    return dest


class Evil:
    """A pickle whose loading creates a marker file: proof that a loader ran the pickle's code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_pickles(root: Path, marker: Path) -> dict[str, Path]:
    """The payload as a raw pickle (.pt, .pkl), as torch.save's zip (.pt), and disguised as a run directory's
    model.safetensors / train_state.pt."""
    raw = pickle.dumps(Evil(marker), protocol=2)
    pickle.loads(raw)  # the payload is live: loading it naively does create the marker...
    assert marker.exists()
    marker.unlink()  # ...which from here on must never appear again
    files = {"raw.pt": raw, "raw.pkl": raw, "raw.bin": raw}
    for name, data in files.items():
        (root / name).write_bytes(data)
    torch.save({"state": Evil(marker)}, root / "zip.pt")
    assert not marker.exists()  # torch.save does not run __reduce__'s result
    paths = {name: root / name for name in (*files, "zip.pt")}
    disguised = root / "disguised-run"
    disguised.mkdir(exist_ok=True)
    (disguised / "model.safetensors").write_bytes(raw)
    (disguised / "checkpoint.json").write_text(json.dumps(_meta().to_dict()))
    paths["disguised-run"] = disguised
    lone = root / "pickle-named.safetensors"
    lone.write_bytes((root / "zip.pt").read_bytes())
    paths["pickle-named.safetensors"] = lone
    return paths


# ----------------------------------------------------------------------------------------- hostile images


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A 100-byte PNG that claims ``width``×``height`` 8-bit grey pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gradient(mode: str = "L", size=(40, 30)) -> Image.Image:
    img = Image.linear_gradient("L").resize(size)
    return img.convert(mode)


BAD_IMAGES = {  # file name -> bytes; every one must give exit 2 and a line naming the file
    "zero-byte.png": lambda: b"",
    "garbage.png": lambda: random.Random(0).randbytes(3000),
    "text.jpg": lambda: b"<html><body>404 Not Found</body></html>\n",
    "truncated.png": lambda: _encoded(_gradient(), "PNG")[:60],
    "truncated.jpg": lambda: _encoded(_gradient("RGB", (200, 150)), "JPEG")[:700],
    "png-signature-only.png": lambda: b"\x89PNG\r\n\x1a\n",
    "huge-dimensions.png": lambda: png_header_only(60_000, 60_000),  # 3.6 G pixels in 100 bytes
    "tiff-not-allowed.png": lambda: _encoded(_gradient(), "TIFF"),  # a real image, in a refused format
    "pickle.png": lambda: pickle.dumps({"a": 1}),
}
GOOD_IMAGES = {  # valid images in unusual shapes: exit 0
    "png-named.jpg": lambda: _encoded(_gradient(), "PNG"),  # the content decides, not the extension
    "no-extension": lambda: _encoded(_gradient(), "PNG"),
    "one-pixel.png": lambda: _encoded(Image.new("L", (1, 1), 255), "PNG"),
    "sixteen-bit.png": lambda: _encoded(_gradient("I;16"), "PNG"),
    "rgba-transparent.png": lambda: _encoded(Image.new("RGBA", (28, 28), (0, 0, 0, 0)), "PNG"),
    "cmyk.jpg": lambda: _encoded(_gradient("CMYK"), "JPEG"),
    "palette.gif": lambda: _encoded(_gradient("P"), "GIF"),
    "wide-strip.bmp": lambda: _encoded(_gradient("RGB", (3000, 2)), "BMP"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_predict_hostile_image_is_one_line_exit_2(capsys, root, name):
    path = root / "images" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(BAD_IMAGES[name]())
    code, _, err = cli(capsys, "predict", MODEL, path)
    assert_clear_error(code, err, "predict", path)


@pytest.mark.parametrize("name", sorted(GOOD_IMAGES))
def test_predict_unusual_but_valid_image_works(capsys, root, name):
    path = root / "images" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(GOOD_IMAGES[name]())
    code, out, err = cli(capsys, "predict", MODEL, path, "--top-k", "2")
    assert code == 0, err
    assert "probability" in out and "Traceback" not in err


def test_predict_missing_and_directory_images(capsys, root, image):
    for bad in (root / "no-such.png", root):
        code, _, err = cli(capsys, "predict", MODEL, image, bad)  # a good image first: the batch still fails
        assert_clear_error(code, err, "predict", bad)


@FUZZ
@given(blob=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".gif", ".bmp", ".webp", ""]))
def test_predict_random_bytes_never_crash(capsys, root, blob, suffix):
    _count("predict: random image bytes")
    path = root / "images" / f"fuzz{suffix}"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(blob)
    code, _, err = cli(capsys, "predict", MODEL, path)
    if code != 0:
        assert_clear_error(code, err, "predict", path)


@FUZZ
@given(data=st.data())
def test_predict_mutated_png_never_crashes(capsys, root, data):
    """Real PNG/JPEG/GIF bytes with a few bytes flipped or cut: the decoders' corner cases."""
    _count("predict: mutated image")
    fmt = data.draw(st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "WEBP"]))
    blob = bytearray(_encoded(_gradient("RGB" if fmt in ("JPEG", "WEBP") else "L"), fmt))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= data.draw(st.integers(1, 255))
    blob = blob[: data.draw(st.integers(1, len(blob)))]
    path = root / "images" / f"mutated.{fmt.lower()}"
    path.write_bytes(bytes(blob))
    code, _, err = cli(capsys, "predict", MODEL, path)
    if code != 0:
        assert_clear_error(code, err, "predict", path)


# ----------------------------------------------------------------------------------------- hostile checkpoints


def _rewrite_json(run: Path, **changes) -> None:
    record = json.loads((run / "checkpoint.json").read_text())
    record.update(changes)
    (run / "checkpoint.json").write_text(json.dumps(record))


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # a tensor byte: the file still parses, only the checksum can tell
    path.write_bytes(bytes(data))


BAD_CHECKPOINTS = {  # name -> damage done to a copy of a good run directory
    "truncated-weights": lambda run: _truncate(run / "model.safetensors", 0.5),
    "weights-cut-in-header": lambda run: _truncate(run / "model.safetensors", 0.001),
    "zero-byte-weights": lambda run: _truncate(run / "model.safetensors", 0),
    "flipped-weight-byte": lambda run: _flip_last_byte(run / "model.safetensors"),
    "missing-weights": lambda run: (run / "model.safetensors").unlink(),
    "garbage-json": lambda run: (run / "checkpoint.json").write_bytes(b"\x00\xff{{ not json"),
    "truncated-json": lambda run: _truncate(run / "checkpoint.json", 0.5),
    "json-is-a-list": lambda run: (run / "checkpoint.json").write_text("[1, 2, 3]"),
    "json-missing-model": lambda run: (run / "checkpoint.json").write_text('{"input_size": [1, 28, 28]}'),
    "unknown-model": lambda run: _rewrite_json(run, model="lenet5_extreme"),
    "unknown-model-kwarg": lambda run: _rewrite_json(run, model_kwargs={"depth": 1000}),
    "string-num-classes": lambda run: _rewrite_json(run, model_kwargs={"num_classes": "ten"}),
    "future-format": lambda run: _rewrite_json(run, format_version=99),
}
# The problem is named rather than the file: the model name the checkpoint asks for.
NAMED = {"unknown-model": "lenet5_extreme"}
ODD_METADATA = {  # metadata that parses but is impossible: a result (the field unused) or a clear error
    "huge-num-classes": {"model_kwargs": {"num_classes": 10**15, "in_channels": 1}},  # 336 PB of weights
    "negative-num-classes": {"model_kwargs": {"num_classes": -3, "in_channels": 1}},
    "huge-input-size": {"input_size": [1, 10**9, 10**9]},
    "negative-input-size": {"input_size": [1, -5, -5]},
    "string-input-size": {"input_size": ["a", "b", "c"]},
    "mean-is-a-string": {"mean": "abc"},
    "mean-wrong-length": {"mean": [0.1, 0.2, 0.3]},
    "too-few-classes": {"classes": ["only-one"]},
    "classes-null": {"classes": None},
    "epoch-is-a-string": {"epoch": "seven"},
}


def _command(kind: str, target: Path, image: Path, root: Path) -> list:
    if kind == "predict":
        return ["predict", target, image]
    if kind == "eval":  # the checkpoint is read before the dataset: no dataset is needed to fail
        return ["eval", target, "--limit", "16", "--batch-size", "16"]
    return ["export", target, "--format", "safetensors", "--out", root / "exported" / "x.safetensors"]


@pytest.mark.parametrize("kind", ["predict", "eval", "export"])
@pytest.mark.parametrize("name", sorted(BAD_CHECKPOINTS))
def test_damaged_checkpoint_is_one_line_exit_2(capsys, root, good_run, image, name, kind):
    run = copy_run(good_run, root / "bad-runs" / name)
    BAD_CHECKPOINTS[name](run)
    code, _, err = cli(capsys, *_command(kind, run, image, root))
    assert_clear_error(code, err, kind, NAMED.get(name, run))  # names the run directory (or a file in it)


@pytest.mark.parametrize("kind", ["predict", "eval", "export"])
@pytest.mark.parametrize("name", sorted(ODD_METADATA))
def test_impossible_metadata_is_a_result_or_one_line(capsys, root, good_run, image, name, kind):
    """A hand-edited or hostile checkpoint.json (with a matching weights checksum): exit 0 where the command
    does not use the field, else exit 2 naming the run; never an internal error or a huge allocation."""
    run = copy_run(good_run, root / "odd-runs" / name)
    _rewrite_json(run, **ODD_METADATA[name])
    code, _, err = cli(capsys, *_command(kind, run, image, root))
    if code != 0:
        assert_clear_error(code, err, kind, run)


@pytest.mark.parametrize("kind", ["predict", "eval", "export"])
def test_missing_and_empty_checkpoint_paths(capsys, root, image, kind):
    empty = root / "empty-run"
    empty.mkdir(exist_ok=True)
    for target in (root / "no-such-run", root / "no-such.safetensors", empty):
        code, _, err = cli(capsys, *_command(kind, target, image, root))
        assert_clear_error(code, err, kind, target)


@pytest.mark.parametrize("kind", ["predict", "eval", "export"])
def test_pickle_checkpoints_refused_in_process(capsys, root, image, kind):
    marker = root / f"PWNED-{kind}"
    where = root / f"evil-{kind}"
    where.mkdir(exist_ok=True)
    for name, path in evil_pickles(where, marker).items():
        code, _, err = cli(capsys, *_command(kind, path, image, root))
        line = assert_clear_error(code, err, kind, path)
        assert "pickle" in line or "safetensors" in line, f"{name}: {line}"
        assert not marker.exists(), f"{name}: the pickle's code ran"


@pytest.mark.slow
def test_malicious_pickle_never_runs_in_a_real_process(root, image):
    """The real CLI, a fresh interpreter: `cnnzoo predict evil.pt` and `cnnzoo eval` on a run directory whose
    model.safetensors is a pickle. The marker file the payload would create never appears."""
    where = root / "evil-subprocess"
    where.mkdir(exist_ok=True)
    marker = where / "PWNED"
    paths = evil_pickles(where, marker)
    proc = run_cli("predict", paths["zip.pt"], image)
    assert_clear_error_proc(proc, "predict", paths["zip.pt"])
    proc = run_cli("eval", paths["disguised-run"])
    assert_clear_error_proc(proc, "eval", paths["disguised-run"])
    assert not marker.exists()


def test_malicious_train_state_is_refused_on_resume(capsys, root, good_run, monkeypatch):
    """`cnnzoo train --resume` reads train_state.pt with torch.load(weights_only=True): a pickle there is
    refused with one line and its code does not run."""
    import cnnzoo.data

    monkeypatch.setattr(cnnzoo.data, "load_dataset", lambda name, data_dir=None: noise_dataset())
    run = copy_run(good_run, root / "evil-resume")
    marker = root / "PWNED-resume"
    (run / "train_state.pt").write_bytes(pickle.dumps(Evil(marker), protocol=2))
    code, _, err = cli(capsys, "train", MODEL, "--out", run, "--resume", "--epochs", "2", "--quiet")
    assert_clear_error(code, err, "train", run / "train_state.pt")
    assert not marker.exists()


@FUZZ
@given(data=st.data())
def test_fuzzed_bare_safetensors_never_crash(capsys, root, good_run, image, data):
    """A lone .safetensors file carries its metadata in the header (no checkpoint.json, so no checksum):
    mutations there reach the JSON and tensor parsing. Any result is exit 0 or one clear line."""
    _count("predict/export: mutated bare .safetensors")
    blob = bytearray((good_run / "model.safetensors").read_bytes())
    header_len = struct.unpack("<Q", blob[:8])[0]
    for _ in range(data.draw(st.integers(1, 3))):  # mostly in the 8-byte length + JSON header
        i = data.draw(st.integers(0, 8 + header_len - 1) | st.integers(0, len(blob) - 1))
        blob[i] ^= data.draw(st.integers(1, 255))
    blob = blob[: data.draw(st.sampled_from([len(blob), data.draw(st.integers(0, len(blob)))]))]
    path = root / "fuzz-bare" / "weights.safetensors"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(bytes(blob))
    kind = data.draw(st.sampled_from(["predict", "export"]))
    code, _, err = cli(capsys, *_command(kind, path, image, root))
    if code != 0:
        assert_clear_error(code, err, kind)


# ----------------------------------------------------------------------------------------- valid inputs


def test_valid_checkpoint_predicts_and_exports(capsys, root, good_run, image):
    """The baseline the error cases are measured against: the same run directory, undamaged, works; the
    export holds the same tensors as the checkpoint (read back with safetensors itself)."""
    from safetensors.torch import load_file

    code, out, err = cli(capsys, "predict", good_run, image, "--top-k", "3")
    assert code == 0, err
    assert "class" in out and "Traceback" not in err
    dest = root / "exported" / "good.safetensors"
    code, out, err = cli(capsys, "export", good_run, "--format", "safetensors", "--out", dest)
    assert code == 0, err
    ref, got = load_file(good_run / "model.safetensors"), load_file(dest)
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)


@needs_fashion
def test_valid_checkpoint_evaluates(capsys, good_run):
    code, out, err = cli(capsys, "eval", good_run, "--limit", "64", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["count"] == 64 and 0 <= result["test_accuracy"] <= 1


# ----------------------------------------------------------------------------------------- datasets


def _idx(shape: tuple[int, ...], fill: int = 0) -> bytes:
    header = bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    count = 1
    for d in shape:
        count *= d
    return header + bytes([fill]) * count


def _gz(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, mtime=0)


def _idx_set(images: bytes, labels: bytes) -> dict[str, bytes]:
    return {
        "train-images-idx3-ubyte.gz": images,
        "train-labels-idx1-ubyte.gz": labels,
        "t10k-images-idx3-ubyte.gz": images,
        "t10k-labels-idx1-ubyte.gz": labels,
    }


BAD_IDX_DIRS = {  # name -> the four MNIST-style files in --data-dir; each must be exit 2 naming a file
    "garbage": lambda: {k: random.Random(k).randbytes(500) for k in _idx_set(b"", b"")},
    "zero-byte": lambda: _idx_set(b"", b""),
    "truncated-gzip": lambda: _idx_set(_gz(_idx((5, 28, 28)))[:40], _gz(_idx((5,)))[:20]),
    "huge-header": lambda: _idx_set(
        _gz(_idx((0, 28, 28))[:4] + struct.pack(">3I", 2**31, 2**31, 2**31)), _gz(_idx((5,)))
    ),
    "count-mismatch": lambda: _idx_set(_gz(_idx((5, 28, 28))), _gz(_idx((4,)))),
    "label-out-of-range": lambda: _idx_set(_gz(_idx((5, 28, 28))), _gz(_idx((5,), fill=200))),
    "wrong-checksum": lambda: _idx_set(
        _gz(_idx((5, 28, 28))), _gz(_idx((5,)))
    ),  # sound, but not the real set
    "a-directory": lambda: None,
}


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """No shared cache and no network: cache in tmp, mirror on a closed local port (fails at once)."""
    monkeypatch.setenv("CNNZOO_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNZOO_MIRROR", "http://127.0.0.1:9/")
    return tmp_path


@pytest.mark.parametrize("action", ["info", "fetch"])
@pytest.mark.parametrize("case", sorted(BAD_IDX_DIRS))
def test_data_commands_on_corrupt_idx_files(capsys, isolated_data, case, action):
    data_dir = isolated_data / "data"
    data_dir.mkdir()
    files = BAD_IDX_DIRS[case]()
    if files is None:  # every expected file is a directory
        for name in _idx_set(b"", b""):
            (data_dir / name).mkdir()
    else:
        for name, blob in files.items():
            (data_dir / name).write_bytes(blob)
    code, _, err = cli(capsys, "data", action, "mnist", "--data-dir", data_dir)
    # directories are not taken for the files: the download is tried (and fails at once, offline)
    assert_clear_error(code, err, "data", "train-images-idx3-ubyte.gz" if files is None else data_dir)
    assert not list((isolated_data / "cache").rglob("*.safetensors")), "a corrupt set was cached"


@FUZZ
@given(data=st.data())
def test_data_info_on_fuzzed_idx_never_crashes(capsys, tmp_path_factory, data):
    _count("data info: mutated IDX files")
    d = tmp_path_factory.mktemp("idx-fuzz")
    files = _idx_set(_gz(_idx((3, 28, 28), fill=7)), _gz(_idx((3,), fill=1)))
    victim = data.draw(st.sampled_from(sorted(files)))
    blob = bytearray(
        files[victim] if data.draw(st.booleans()) else _idx((3, 28, 28) if "images" in victim else (3,))
    )
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, min(len(blob), 64) - 1) | st.integers(0, len(blob) - 1))
        blob[i] ^= data.draw(st.integers(1, 255))
    files[victim] = bytes(blob[: data.draw(st.integers(0, len(blob)))])
    for name, b in files.items():
        (d / name).write_bytes(b)
    os.environ["CNNZOO_DATA"], os.environ["CNNZOO_MIRROR"] = str(d / "cache"), "http://127.0.0.1:9/"
    try:
        code, _, err = cli(capsys, "data", "info", "mnist", "--data-dir", d, "--no-download")
    finally:
        del os.environ["CNNZOO_DATA"], os.environ["CNNZOO_MIRROR"]
    assert_clear_error(code, err, "data", d)  # never 0: even a sound file is not the published MNIST


class _Mirror(http.server.BaseHTTPRequestHandler):
    """A dataset mirror gone bad: /wrong/* serves the wrong bytes, /truncated/* closes the connection halfway."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = random.Random(self.path).randbytes(4096)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) * (2 if self.path.startswith("/truncated/") else 1)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def bad_mirror():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("fault", ["wrong", "truncated"])
def test_data_fetch_from_a_bad_mirror_leaves_no_file(capsys, isolated_data, bad_mirror, monkeypatch, fault):
    """`cnnzoo data fetch` end to end: one line (a checksum mismatch names both MD5s), and nothing is left
    in --data-dir where the good file is expected, not even a partial one."""
    monkeypatch.setenv("CNNZOO_MIRROR", f"{bad_mirror}/{fault}/")
    data_dir = isolated_data / "data"
    code, _, err = cli(capsys, "data", "fetch", "mnist", "--data-dir", data_dir)
    line = assert_clear_error(code, err, "data", "train-images-idx3-ubyte.gz")
    if fault == "wrong":
        assert "checksum" in line.lower() and "f68b3c2dcbeaaa9fbdd348bbdeb94873" in line, line  # MNIST's MD5
    assert not [p.name for p in data_dir.rglob("*") if p.is_file()], "a partial download was left"


# ----------------------------------------------------------------------------------------- serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_with_corrupt_checkpoint_fails_at_start(root, good_run):
    """`cnnzoo serve --checkpoint BAD` must refuse at start with one line, not serve a broken model."""
    run = copy_run(good_run, root / "serve-bad")
    _truncate(run / "model.safetensors", 0.5)
    port = _free_port()
    t0 = time.perf_counter()
    proc = run_cli("serve", "--checkpoint", run, "--port", port, timeout=120)
    assert_clear_error_proc(proc, "serve", run)
    assert time.perf_counter() - t0 < 120
    with socket.socket() as s:  # nothing listens there
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_serve_refuses_pickle_and_missing_in_process(capsys, root, good_run, monkeypatch):
    import uvicorn

    def no_serving(*a, **k):  # if a bad checkpoint got this far, the test fails instead of serving forever
        raise AssertionError("the server started with a bad checkpoint")

    monkeypatch.setattr(uvicorn, "run", no_serving)
    monkeypatch.setattr(uvicorn.Server, "run", no_serving)
    where = root / "evil-serve"
    where.mkdir(exist_ok=True)
    marker = where / "PWNED"
    targets = [*evil_pickles(where, marker).values(), root / "no-such-run"]
    bad_json = copy_run(good_run, root / "serve-bad-json")
    (bad_json / "checkpoint.json").write_text("{")
    for target in [*targets, bad_json]:
        code, _, err = cli(capsys, "serve", "--checkpoint", target)
        assert_clear_error(code, err, "serve", target)
    assert not marker.exists()


# ----------------------------------------------------------------------------------------- full disk


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
