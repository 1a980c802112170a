"""Checkpoints: round trip, atomic commit under crashes, refusing pickles, fuzzed files, preprocess."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnzoo
from cnnzoo import checkpoint as ckpt
from cnnzoo.card import ModelCard
from cnnzoo.errors import CheckpointError, ShapeError
from cnnzoo.preprocess import preprocess


def _meta(epoch=1, **kw):
    return ckpt.CheckpointMeta(
        model="lenet5_modern",
        model_kwargs={"num_classes": 10, "in_channels": 1},
        input_size=[1, 28, 28],
        dataset="fashion-mnist",
        classes=[str(i) for i in range(10)],
        mean=[0.286],
        std=[0.353],
        epoch=epoch,
        **kw,
    )


def _model(seed=0):
    torch.manual_seed(seed)
    return cnnzoo.create_model("lenet5_modern")


@pytest.fixture
def run_dir(tmp_path):
    ckpt.save_checkpoint(tmp_path / "run", _model(), _meta(), {"epoch": 1, "x": torch.arange(3)})
    return tmp_path / "run"


def test_round_trip_dir_and_file(run_dir):
    ref = _model()
    x = torch.randn(4, 1, 28, 28)
    for path in (run_dir, run_dir / "model.safetensors"):
        model, meta = ckpt.load_checkpoint(path)
        assert meta.model == "lenet5_modern" and meta.epoch == 1 and meta.input_size == (1, 28, 28)
        assert meta.format_version == ckpt.FORMAT_VERSION
        assert torch.equal(model(x), ref.eval()(x))
    assert ckpt.load_train_state(run_dir)["x"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.json",
        "model.safetensors",
        "train_state.pt",
    ]


def test_bare_safetensors_carries_its_metadata(run_dir, tmp_path):
    lone = tmp_path / "elsewhere" / "weights.safetensors"
    lone.parent.mkdir()
    lone.write_bytes((run_dir / "model.safetensors").read_bytes())
    model, meta = ckpt.load_checkpoint(lone)
    assert meta.classes == tuple(str(i) for i in range(10)) and meta.mean == (0.286,)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".pkl"])
def test_pickle_files_are_refused(tmp_path, suffix):
    path = tmp_path / f"weights{suffix}"
    torch.save(_model().state_dict(), path)
    with pytest.raises(CheckpointError, match="pickle"):
        ckpt.load_checkpoint(path)


class _Evil:
    """A pickle whose loading would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_never_runs(tmp_path):
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Evil(proof)))  # the payload does work when unpickled naively...
    assert proof.exists()
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Evil(marker), protocol=2)
    (tmp_path / "evil.pt").write_bytes(payload)
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(payload)  # a pickle in disguise
    (run / "train_state.pt").write_bytes(payload)  # and as a resume state
    (run / "checkpoint.json").write_text(json.dumps(_meta().to_dict()))
    for attempt in (
        lambda: ckpt.load_checkpoint(tmp_path / "evil.pt"),
        lambda: ckpt.load_checkpoint(run),
        lambda: ckpt.load_train_state(run),
    ):
        with pytest.raises(CheckpointError):
            attempt()
    assert not marker.exists()  # ...but never through cnnzoo


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_weights_give_checkpoint_error(run_dir, tmp_path, data):
    good = (run_dir / "model.safetensors").read_bytes()
    kind = data.draw(st.sampled_from(["truncate", "flip", "garbage"]))
    if kind == "truncate":
        bad = good[: data.draw(st.integers(0, len(good) - 1))]
    elif kind == "flip":
        i = data.draw(st.integers(0, len(good) - 1))
        bad = good[:i] + bytes([good[i] ^ data.draw(st.integers(1, 255))]) + good[i + 1 :]
    else:
        bad = data.draw(st.binary(max_size=300))
    path = tmp_path / "fuzz" / "model.safetensors"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(bad)
    (path.parent / "checkpoint.json").write_text((run_dir / "checkpoint.json").read_text())
    with pytest.raises(CheckpointError, match="model.safetensors"):  # a flipped data byte fails the checksum
        ckpt.load_checkpoint(path.parent)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 400), junk=st.binary(max_size=40))
def test_fuzzed_json_gives_checkpoint_error(run_dir, cut, junk):
    good = (run_dir / "checkpoint.json").read_text()
    text = good[: min(cut, len(good) - 2)] + junk.decode("latin-1")
    (run_dir / "checkpoint.json").write_text(text)
    try:
        with pytest.raises(CheckpointError, match="checkpoint.json"):
            ckpt.load_checkpoint(run_dir)
    finally:
        (run_dir / "checkpoint.json").write_text(good)


def test_wrong_weights_for_model_is_one_line_error(run_dir):
    meta = json.loads((run_dir / "checkpoint.json").read_text())
    meta["model"] = "lenet5"
    (run_dir / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as e:
        ckpt.load_checkpoint(run_dir)
    assert "\n" not in str(e.value) and "lenet5" in str(e.value)


@pytest.mark.parametrize("crash_at", range(6))
def test_crash_during_commit_leaves_a_whole_checkpoint(run_dir, monkeypatch, crash_at):
    """Kill the second save at each filesystem step: what loads afterwards is epoch 1 or epoch 2, whole."""
    old_out = ckpt.load_checkpoint(run_dir)[0](torch.ones(1, 1, 28, 28))
    new_model = _model(seed=1)
    new_out = new_model.eval()(torch.ones(1, 1, 28, 28))
    steps = []
    real_replace, real_write = os.replace, ckpt._write_durable

    def counted(fn):
        def wrapper(*a, **k):
            if len(steps) == crash_at:
                raise KeyboardInterrupt("power cut")
            steps.append(fn.__name__)
            return fn(*a, **k)

        return wrapper

    monkeypatch.setattr(ckpt.os, "replace", counted(real_replace))
    monkeypatch.setattr(ckpt, "_write_durable", counted(real_write))
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(run_dir, new_model, _meta(epoch=2), {"epoch": 2})
    monkeypatch.undo()
    model, meta = ckpt.load_checkpoint(run_dir)  # read-only view first
    out = model(torch.ones(1, 1, 28, 28))
    if meta.epoch == 1:
        assert torch.equal(out, old_out)
    else:
        assert meta.epoch == 2 and torch.equal(out, new_out)
    ckpt.recover(run_dir)  # what --resume does: finish or discard
    model2, meta2 = ckpt.load_checkpoint(run_dir)
    assert meta2.epoch == meta.epoch and ckpt.load_train_state(run_dir)["epoch"] == meta.epoch
    assert not [p for p in run_dir.iterdir() if p.suffix in (".pending", ".partial")]


def test_unwritable_and_full_disk_fail_early(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot create"):
        ckpt.check_writable(blocker / "run")
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 1000))
    with pytest.raises(CheckpointError, match="not enough space"):
        ckpt.check_writable(tmp_path / "run", need_bytes=10_000)


def test_preprocess_pads_and_normalises_like_torchvision():
    x = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    meta = _meta().replace(input_size=[1, 32, 32])
    got = preprocess(x, meta)
    ref = TF.normalize(TF.pad(TF.to_dtype(x, torch.float32, scale=True), [2, 2, 2, 2]), [0.286], [0.353])
    assert got.shape == (3, 1, 32, 32)
    torch.testing.assert_close(got, ref)
    with pytest.raises(ShapeError, match="3 channel"):
        preprocess(torch.zeros(1, 3, 28, 28, dtype=torch.uint8), meta)


def test_preprocess_resizes_like_torchvision():
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    meta = ModelCard(model="m", input_size=[3, 64, 64], mean=[0.5] * 3, std=[0.25] * 3)
    got = preprocess(x, meta)
    ref = TF.resize(x.float(), [64, 64], antialias=True).clamp(0, 255) / 255
    ref = TF.normalize(ref, [0.5] * 3, [0.25] * 3)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_model_kwargs_are_recorded_and_rebuild_the_same_model(tmp_path):
    """A non-default build (option-B shortcuts, 7 classes, 3 channels) comes back as that build, not the
    registry's default: the checkpoint stores what create_model was given."""
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet20", num_classes=7, shortcut="B")
    assert model.card.model_kwargs == {"num_classes": 7, "shortcut": "B"}
    meta = ckpt.CheckpointMeta(
        model="resnet20",
        model_kwargs=model.card.model_kwargs,
        input_size=[3, 32, 32],
        classes=list("abcdefg"),
        mean=[0.5] * 3,
        std=[0.25] * 3,
    )
    ckpt.save_checkpoint(tmp_path / "run", model, meta)
    loaded, _ = ckpt.load_checkpoint(tmp_path / "run")
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    # the default build (option A: no projection weights) does not fit these weights: one clear line
    record = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    record["model_kwargs"] = {"num_classes": 7}
    (tmp_path / "run" / "checkpoint.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=r"run.*resnet20.*unexpected") as e:
        ckpt.load_checkpoint(tmp_path / "run")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("input_size", [1, 28]),
        ("input_size", [1, 10**9, 28]),
        ("mean", ["x"]),
        ("std", [0.0]),
        ("epoch", -1),
        ("classes", "abc"),
        ("model_kwargs", {"num_classes": 10**12}),
    ],
)
def test_out_of_range_metadata_is_refused_before_building(run_dir, field, value):
    record = json.loads((run_dir / "checkpoint.json").read_text())
    if field == "model_kwargs":
        record["model_kwargs"].update(value)
    else:
        record[field] = value
    (run_dir / "checkpoint.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=field.split("_")[0]) as e:
        ckpt.load_checkpoint(run_dir)
    assert "checkpoint.json" in str(e.value)


def test_class_names_must_match_the_outputs(run_dir):
    record = json.loads((run_dir / "checkpoint.json").read_text())
    record["classes"] = ["a", "b", "c"]
    (run_dir / "checkpoint.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="3 class names but the model has 10 outputs"):
        ckpt.load_checkpoint(run_dir)


def test_safetensors_whose_header_length_starts_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    """A raw pickle starts with byte 0x80; so does a safetensors file whose header is 128 (mod 256) bytes
    long. The pickle check must tell them apart, and still refuse a real pickle of the same name."""
    from safetensors.torch import save

    tensors = {"w": torch.arange(6.0).reshape(2, 3)}
    data = next(d for pad in range(400) if (d := save(tensors, metadata={"pad": "x" * pad}))[0] == 0x80)
    path = tmp_path / "w.safetensors"
    path.write_bytes(data)
    ckpt.refuse_pickle(path)  # no error
    loaded, _, _ = ckpt.read_safetensors(path)
    assert torch.equal(loaded["w"], tensors["w"])
    path.write_bytes(pickle.dumps(tensors, protocol=4))
    with pytest.raises(CheckpointError, match="pickle"):
        ckpt.refuse_pickle(path)


def test_meta_is_the_model_card_plus_progress(tmp_path):
    """One record: the checkpoint's metadata is a frozen ModelCard with epoch/metrics/format_version, its
    JSON is unchanged (lists, the same keys), and load_checkpoint attaches the card to the model."""
    meta = _meta()
    assert isinstance(meta, ModelCard) and meta.card == ModelCard(
        **{
            k: getattr(meta, k)
            for k in ("model", "model_kwargs", "input_size", "classes", "mean", "std", "dataset")
        }
    )
    with pytest.raises(AttributeError):
        meta.epoch = 5  # frozen: a new epoch is meta.replace(epoch=...)
    d = meta.to_dict()
    assert list(d) == [
        "model",
        "model_kwargs",
        "input_size",
        "dataset",
        "classes",
        "mean",
        "std",
        "epoch",
        "metrics",
        "format_version",
    ]
    assert isinstance(d["input_size"], list) and ckpt.CheckpointMeta.from_dict(d) == meta
    run = ckpt.save_checkpoint(tmp_path / "run", _model(), meta)
    model, loaded = ckpt.load_checkpoint(run)
    assert cnnzoo.card.card_of(model) == meta.card and not hasattr(model, "preprocessing")
    assert not hasattr(ckpt, "preprocess")  # one preprocessing: cnnzoo.preprocess.preprocess
