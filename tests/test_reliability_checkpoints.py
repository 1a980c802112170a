"""Hostile checkpoints through the real ``cnnzoo predict``, ``eval``, ``export`` and ``serve``: damaged run
directories (truncated or flipped weights, garbage or impossible checkpoint.json, unknown models, future
formats), missing and empty paths, and malicious pickles in every place a checkpoint or training state is
read give exit 2 and one line naming the run, and the pickle's code never runs (in-process and in a fresh
interpreter); mutated bare .safetensors files give exit 0 or one line; ``serve`` refuses a bad checkpoint
before its port opens. The undamaged run predicts, exports the same tensors and evaluates."""

from __future__ import annotations

import json
import pickle
import shutil
import socket
import struct
import time
from pathlib import Path

import pytest
import torch
from cli_harness import (
    FUZZ,
    MODEL,
    _count,
    _meta,
    assert_clear_error,
    assert_clear_error_proc,
    cli,
    needs_fashion,
    run_cli,
)
from cli_harness import good_run_fixture as good_run_fixture  # fixtures, found by pytest under their names
from cli_harness import image_fixture as image_fixture
from cli_harness import root_fixture as root_fixture
from hypothesis import given
from hypothesis import strategies as st


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
