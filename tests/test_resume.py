"""--resume continues exactly: 1 epoch + crash + resume 1 epoch == 2 uninterrupted epochs (same seed)."""

from __future__ import annotations

import pytest
import torch
from helpers import synthetic as _synthetic

import cnnzoo
from cnnzoo import checkpoint as ckpt
from cnnzoo.data import ImageDataset


def synthetic(n_train=768, **kw) -> ImageDataset:
    return _synthetic(n_train=n_train, **kw)


# CPU: bit-exact resume needs deterministic kernels (CUDA: see docs/training.md)
OPTS = dict(
    epochs=2, batch_size=32, lr=0.1, seed=7, progress="quiet", crop_padding=2, hflip=True, device="cpu"
)


def _model(seed=0):
    torch.manual_seed(seed)
    m = cnnzoo.create_model("lenet5_modern")
    m.classifier.add_module("dropout", torch.nn.Dropout(0.1))  # global-RNG use must be restored on resume too
    return m


def _crash_after_first_checkpoint(monkeypatch):
    real = ckpt.save_checkpoint
    calls = []

    def save(*a, **k):
        out = real(*a, **k)
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt("simulated crash right after epoch 1's checkpoint")
        return out

    monkeypatch.setattr(ckpt, "save_checkpoint", save)


@pytest.mark.parametrize("optimizer", ["sgd", "muon"])  # muon: its 2-D momentum of 4-D filters too
def test_resume_gives_identical_metrics(tmp_path, monkeypatch, optimizer):
    data = synthetic()
    opts = OPTS | {"optimizer": optimizer}
    full = cnnzoo.fit(_model(), data, out=str(tmp_path / "full"), **opts)

    _crash_after_first_checkpoint(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        cnnzoo.fit(_model(), data, out=str(tmp_path / "cut"), **opts)
    monkeypatch.undo()
    assert ckpt.load_meta(tmp_path / "cut").epoch == 1
    # resume into a differently initialised model: everything must come from the checkpoint
    resumed = cnnzoo.fit(_model(seed=123), data, out=str(tmp_path / "cut"), resume=True, **opts)

    assert len(resumed.epochs) == 2
    for a, b in zip(full.epochs, resumed.epochs, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            assert a[key] == b[key], (key, a, b)
    assert full.test["accuracy"] == resumed.test["accuracy"]
    assert full.test["loss"] == resumed.test["loss"]
    wa, _ = ckpt.load_checkpoint(tmp_path / "full")
    wb, _ = ckpt.load_checkpoint(tmp_path / "cut")
    for (ka, va), (kb, vb) in zip(wa.state_dict().items(), wb.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
    assert full.test["accuracy"] > 0.3  # it learned something: the comparison is not between two no-ops


def test_same_seed_repeats_and_other_seed_differs():
    data = synthetic(n_train=256, n_test=64)
    opts = OPTS | dict(epochs=1)
    a = cnnzoo.fit(_model(), data, **opts)
    b = cnnzoo.fit(_model(), data, **opts)
    c = cnnzoo.fit(_model(), data, **(opts | dict(seed=8)))
    assert a.epochs[0]["loss"] == b.epochs[0]["loss"]
    assert a.epochs[0]["loss"] != c.epochs[0]["loss"]


def test_resume_of_finished_run_trains_no_more(tmp_path):
    data = synthetic(n_train=256, n_test=64)
    opts = OPTS | dict(epochs=1)
    first = cnnzoo.fit(_model(), data, out=str(tmp_path), **opts)
    again = cnnzoo.fit(_model(seed=5), data, out=str(tmp_path), resume=True, **opts)
    assert len(again.epochs) == 1
    assert again.test["accuracy"] == first.test["accuracy"]
