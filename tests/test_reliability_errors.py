"""Unclear errors become one line (exit 2), and what should work works: names that are not UTF-8 in streamed
and in-memory folders, a storm of unreadable files summed up in one line (the list in the run's
skipped.log), config.json with a non-name model or 100,000-deep JSON, an Inception module's 192-channel
checkpoint exported."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_harness import assert_clear_error, cli
from PIL import Image

import cnnzoo
from cnnzoo import checkpoint as ckpt


def _folder(root: Path, bad: int = 0) -> Path:
    """train/ and test/ with two classes, one named in Latin-1 (not UTF-8), a file so named in each, and
    ``bad`` unreadable .png files in a class of train/."""
    rng = np.random.default_rng(0)
    base = os.fsencode(root)
    for split in (b"train", b"test"):
        for cls in (b"plain", b"caf\xe9"):
            d = os.path.join(base, split, cls)
            os.makedirs(d)
            for i in range(8):
                name = b"\xff%d.png" % i if i == 0 else b"img%d.png" % i
                Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(
                    os.fsdecode(os.path.join(d, name))
                )
    for i in range(bad):
        Path(os.fsdecode(os.path.join(base, b"train", b"plain", b"broken%03d.png" % i))).write_bytes(
            b"not a png"
        )
    return root


@pytest.mark.slow
@pytest.mark.parametrize("stream", [True, False])
def test_names_that_are_not_utf8_train(capsys, tmp_path, stream):
    data = _folder(tmp_path / "data")
    out = tmp_path / "run"
    code, stdout, err = cli(
        capsys,
        "train",
        "lenet5_modern",
        "--dataset",
        f"imagefolder:{data}",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--quiet",
        "--out",
        out,
        *(["--stream"] if stream else []),
    )
    assert code == 0, err
    meta = json.loads((out / ckpt.META).read_text())
    assert sorted(meta["classes"]) == ["caf\\xe9", "plain"]  # the bytes shown, printable anywhere
    assert "16 training images" in stdout or not stream


def _train_stream(capsys, data: Path, out: Path, batch: int = 8):
    return cli(
        capsys,
        "train",
        "lenet5_modern",
        "--dataset",
        f"imagefolder:{data}",
        "--stream",
        "--epochs",
        "1",
        "--batch-size",
        batch,
        "--quiet",
        "--out",
        out,
    )


@pytest.mark.slow
def test_unreadable_files_are_three_lines_and_a_count(capsys, tmp_path):
    out = tmp_path / "run"
    # 16 + 6 training images in two batches of 11: every file is read, and no batch is all unreadable
    code, stdout, err = _train_stream(capsys, _folder(tmp_path / "data", bad=6), out, batch=11)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 4 and "skipped.log" in warnings[-1], err  # three named, one for the rest
    logged = (out / "skipped.log").read_text().splitlines()
    assert len(logged) == 6 and all("broken" in line for line in logged)
    assert json.loads((out / "result.json").read_text())["skipped_files"] == 6
    assert "skipped 6 unreadable file(s), listed in" in stdout


@pytest.mark.slow
def test_a_storm_of_unreadable_files_ends_in_one_error_not_thousands_of_lines(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = _train_stream(
        capsys, _folder(tmp_path / "data", bad=300), out
    )  # a folder replaced mid-run
    assert_clear_error(code, err, "train", "no image of a batch could be read")
    assert len(err.strip().splitlines()) <= 5, err
    assert len((out / "skipped.log").read_text().splitlines()) >= 8  # every one seen, in the log


@pytest.fixture
def run(tmp_path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "run"
    meta = ckpt.CheckpointMeta(
        model="lenet5_modern",
        model_kwargs={"num_classes": 10, "in_channels": 1},
        input_size=[1, 28, 28],
        classes=[str(i) for i in range(10)],
        epoch=1,
    )
    ckpt.save_checkpoint(path, cnnzoo.create_model("lenet5_modern"), meta, {"epoch": 1, "history": []})
    return path


def test_config_json_model_that_is_not_a_name(capsys, run):
    (run / "config.json").write_text(json.dumps({"model": 5, "epochs": 2}))
    code, _, err = cli(capsys, "train", "--resume", "--out", run, "--quiet")
    assert_clear_error(code, err, "train", "config.json", "'model' must be a name")


@pytest.mark.parametrize("name", ["config.json", ckpt.META])
def test_json_nested_100k_deep(capsys, run, name):
    (run / name).write_text("[" * 100_000 + "]" * 100_000)
    if name == "config.json":
        code, _, err = cli(capsys, "train", "--resume", "--out", run, "--quiet")
        assert_clear_error(code, err, "train", name, "nested too deeply")
    else:
        code, _, err = cli(
            capsys, "export", run, "--format", "safetensors", "--out", run.parent / "x.safetensors"
        )
        assert_clear_error(code, err, "export", name, "nested too deeply")


@pytest.mark.parametrize("model", ["inception_naive_5x5", "inception_bottleneck_5x5"])
def test_inception_module_checkpoint_exports(capsys, tmp_path, model):
    torch.manual_seed(0)
    net = cnnzoo.create_model(model)
    size = list(net.card.input_size)
    assert size[0] == 192  # the module of GoogLeNet's inception (3a) takes 192 channels
    meta = ckpt.CheckpointMeta(model=model, model_kwargs={}, input_size=size, classes=[], epoch=0)
    ckpt.save_checkpoint(tmp_path / "run", net, meta)
    code, _, err = cli(
        capsys, "export", tmp_path / "run", "--format", "safetensors", "--out", tmp_path / "m.safetensors"
    )
    assert code == 0, err
    loaded, _ = ckpt.load_checkpoint(tmp_path / "m.safetensors")
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), net.state_dict().values(), strict=True)
    )
