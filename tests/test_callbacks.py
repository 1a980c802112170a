"""fit with the user's own pieces: a loss, metrics (callables and torchmetrics), Keras-style callbacks,
EarlyStopping with a resumable checkpoint, and seed= against whatever the global RNG did."""

from __future__ import annotations

import pytest
import torch
from helpers import synthetic
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import cnnzoo
from cnnzoo.checkpoint import load_meta, load_weights_into
from cnnzoo.train.callbacks import Callback, EarlyStopping, ModelCheckpoint


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 5),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


@pytest.fixture(scope="module")
def data():
    ds = synthetic(n_train=96, n_test=32)
    return ds.train_images, ds.train_labels, ds.test_images, ds.test_labels


def test_callable_loss_and_metric_are_called(data):
    x, y, xv, yv = data
    calls = {"loss": 0, "metric": 0}

    def my_loss(logits, labels):
        calls["loss"] += 1
        return nn.functional.cross_entropy(logits, labels)

    def top1(logits, labels):
        calls["metric"] += 1
        return (logits.argmax(1) == labels).float().mean()

    h = cnnzoo.fit(
        _net(),
        x,
        y,
        validation_data=(xv, yv),
        epochs=2,
        batch_size=32,
        loss=my_loss,
        metrics=[top1],
        progress=False,
    )
    assert calls["loss"] >= 2 * 3 and calls["metric"] >= 2 * 3  # every training batch, and validation
    # the callable metric is top-1 accuracy: it must equal cnnzoo's own accuracy on the same batches
    assert h.history["top1"] == pytest.approx(h.history["accuracy"])
    assert h.history["val_top1"] == pytest.approx(h.history["val_accuracy"])


def test_torchmetrics_metric(data):
    torchmetrics = pytest.importorskip("torchmetrics")
    x, y, xv, yv = data
    acc = torchmetrics.classification.MulticlassAccuracy(num_classes=10, average="micro")
    h = cnnzoo.fit(
        _net(), x, y, validation_data=(xv, yv), epochs=1, batch_size=32, metrics=[acc], progress=False
    )
    assert h.history["val_multiclassaccuracy"] == pytest.approx(h.history["val_accuracy"])


def test_keras_hooks_are_called_in_order(data):
    x, y, _, _ = data
    seen = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            seen.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            seen.append(f"epoch_begin {epoch}")

        def on_batch_begin(self, batch, logs=None):
            seen.append(f"batch_begin {batch}")

        def on_batch_end(self, batch, logs=None):
            assert logs["loss"] > 0
            seen.append(f"batch_end {batch}")

        def on_epoch_end(self, epoch, logs=None):
            assert "loss" in logs and "accuracy" in logs
            seen.append(f"epoch_end {epoch}")

        def on_train_end(self, logs=None):
            seen.append("train_end")

    cnnzoo.fit(_net(), x, y, epochs=1, batch_size=48, callbacks=[Recorder()], progress=False)
    assert seen == [
        "train_begin",
        "epoch_begin 0",
        "batch_begin 0",
        "batch_end 0",
        "batch_begin 1",
        "batch_end 1",
        "epoch_end 0",
        "train_end",
    ]


@pytest.mark.slow
def test_early_stopping_stops_and_the_run_resumes(data, tmp_path):
    x, y, _, _ = data
    stop = EarlyStopping(monitor="loss", min_delta=10.0, patience=1)  # no epoch improves the loss by 10
    h = cnnzoo.fit(
        _net(), x, y, epochs=30, batch_size=32, out=str(tmp_path), callbacks=[stop], progress=False
    )
    assert len(h.epochs) == 3 and stop.stopped_epoch == 2
    meta = load_meta(tmp_path)
    assert meta.epoch == 3
    resumed = cnnzoo.fit(
        _net(), x, y, epochs=30, batch_size=32, out=str(tmp_path), resume=True, progress=False
    )
    assert [r["epoch"] for r in resumed.epochs] == list(range(1, 31))


def test_model_checkpoint_keeps_the_best(data, tmp_path):
    x, y, xv, yv = data
    best = ModelCheckpoint(tmp_path / "best", monitor="val_accuracy", save_best_only=True)
    h = cnnzoo.fit(
        _net(),
        x,
        y,
        validation_data=(xv, yv),
        epochs=3,
        batch_size=32,
        optimizer="adam",
        lr=0.01,
        callbacks=[best],
        progress=False,
    )
    meta = load_meta(tmp_path / "best")
    load_weights_into(_net(), tmp_path / "best")  # a valid checkpoint of this model
    accs = h.history["val_accuracy"]
    assert meta.metrics["val_accuracy"] == max(accs) and meta.epoch == accs.index(max(accs)) + 1


def test_seed_repeats_whatever_the_global_rng_did(data):
    """Dropout and a shuffling DataLoader both draw from the global RNG: seed= fixes it for the run."""
    x, y, _, _ = data
    start = _net(5).state_dict()
    ends = []
    for noise in (1, 2):
        torch.manual_seed(noise)
        torch.rand(noise * 1000)  # the global RNG somewhere else
        model = _net()
        model.load_state_dict(start)
        loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
        cnnzoo.fit(model, loader, epochs=2, seed=7, optimizer=torch.optim.Adam, progress=False)
        ends.append(model.state_dict())
    assert all(torch.equal(ends[0][k], ends[1][k]) for k in ends[0])
    assert not all(torch.equal(start[k], ends[0][k]) for k in start)  # it did train


def test_create_model_seed_repeats_initial_weights():
    torch.manual_seed(1)
    a = cnnzoo.create_model("lenet5", seed=3)
    torch.manual_seed(2)
    b = cnnzoo.create_model("lenet5", seed=3)
    c = cnnzoo.create_model("lenet5", seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


def test_progress_false_prints_nothing(data, capsys):
    x, y, _, _ = data
    threads = torch.get_num_threads()
    cnnzoo.fit(_net(), x, y, epochs=1, batch_size=32, progress=False)
    assert capsys.readouterr().out == ""
    assert torch.get_num_threads() == threads  # the thread budget's choice ends with the run
    cnnzoo.fit(_net(), x, y, epochs=1, batch_size=32, progress=True)
    assert "fit Sequential" in capsys.readouterr().out
