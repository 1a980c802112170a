"""fit on what PyTorch and Keras users already have: arrays in any layout, Datasets, DataLoaders.

The references are not cnnzoo's: numpy's own transpose and scaling, and the plain PyTorch training loop
of the PyTorch tutorial on the same DataLoader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import synthetic
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import cnnzoo
from cnnzoo.errors import ShapeError


def _net(seed=0, channels=1):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 5), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 10)
    )


def _keras_arrays(n=128):
    """Keras's MNIST shapes: uint8 (N, 28, 28, 1) numpy images, uint8 labels (what mnist.load_data gives)."""
    ds = synthetic(n_train=n, n_test=64)
    x = ds.train_images.numpy().transpose(0, 2, 3, 1).copy()
    xv = ds.test_images.numpy().transpose(0, 2, 3, 1).copy()
    return x, ds.train_labels.numpy().astype(np.uint8), xv, ds.test_labels.numpy().astype(np.uint8)


class _Inputs(nn.Module):
    """Records what the model is given."""

    def __init__(self, net):
        super().__init__()
        self.net, self.seen = net, []

    def forward(self, x):
        if self.training:
            self.seen.append(x.detach().clone())
        return self.net(x)


def test_keras_shaped_uint8_numpy_with_validation_data():
    x, y, xv, yv = _keras_arrays(256)
    h = cnnzoo.fit(
        _net(),
        x,
        y,
        validation_data=(xv, yv),
        epochs=4,
        batch_size=16,
        optimizer="adam",
        lr=0.01,
        progress=False,
    )
    assert len(h.history["val_accuracy"]) == 4
    assert h.history["val_accuracy"][-1] > 0.15  # learnt something: chance is 0.1
    assert "NHWC" in h.result["header"] and "no augmentation" in h.result["header"]


def test_uint8_images_are_scaled_and_normalised_like_numpy_does_it():
    x, y, _, _ = _keras_arrays(64)
    model = _Inputs(_net())
    cnnzoo.fit(model, x, y, epochs=1, batch_size=64, progress=False, channels_last=False)
    chw = x.transpose(0, 3, 1, 2).astype(np.float64) / 255.0
    expected = (chw - chw.mean()) / chw.std()  # one channel: the population statistics
    got = model.seen[0].double().numpy()
    # the batch is a permutation of the set: compare sorted per-image sums
    assert np.allclose(np.sort(got.sum((1, 2, 3))), np.sort(expected.sum((1, 2, 3))), atol=1e-3)


def test_float_tensors_are_taken_as_they_are():
    x = torch.rand(64, 1, 28, 28) * 7 - 3  # not 0..1: cnnzoo must not rescale it
    y = torch.randint(0, 10, (64,))
    model = _Inputs(_net())
    cnnzoo.fit(model, x, y, epochs=1, batch_size=64, progress=False, channels_last=False)
    seen = model.seen[0]
    assert torch.equal(seen.sum((1, 2, 3)).sort().values, x.sum((1, 2, 3)).sort().values)


def test_layouts_train_alike():
    """N×H×W, N×H×W×C and N×C×H×W of the same images give the same run."""
    x, y, _, _ = _keras_arrays(64)
    runs = []
    for images in (x[..., 0], x, np.ascontiguousarray(x.transpose(0, 3, 1, 2))):
        model = _net()
        cnnzoo.fit(model, images, y.astype(np.int64), epochs=1, batch_size=32, progress=False, seed=1)
        runs.append(model[0].weight.detach())
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[1], runs[2])


def test_tensor_dataset_trains():
    ds = synthetic(n_train=128)
    h = cnnzoo.fit(
        _net(), TensorDataset(ds.train_images, ds.train_labels), epochs=1, batch_size=32, progress=False
    )
    assert h.history["loss"] and "val_loss" not in h.history  # no split held out unless asked


def test_dataloader_is_used_as_given():
    ds = synthetic(n_train=96)
    loader = DataLoader(TensorDataset(ds.train_images, ds.train_labels), batch_size=12, shuffle=True)
    model = _Inputs(_net())
    h = cnnzoo.fit(model, loader, epochs=1, progress=False)
    assert [len(b) for b in model.seen] == [12] * 8
    assert h.epochs[0]["images"] == 96


def test_dataloader_matches_the_plain_pytorch_loop():
    """fit on a DataLoader with the user's optimizer is the tutorial loop: the same weights at the end."""
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=False)
    ours, theirs = _net(3), _net(3)
    cnnzoo.fit(
        ours,
        loader,
        epochs=2,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        loss=nn.CrossEntropyLoss(),
        progress=False,
        channels_last=False,
        bf16=False,
    )
    opt = torch.optim.SGD(theirs.parameters(), lr=0.1)
    for _ in range(2):  # https://pytorch.org/tutorials/beginner/basics/optimization_tutorial.html
        theirs.train()
        for xb, yb in loader:
            loss = nn.CrossEntropyLoss()(theirs(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_validation_split_only_when_asked():
    ds = synthetic(n_train=100)
    h = cnnzoo.fit(_net(), ds.train_images, ds.train_labels, epochs=1, batch_size=10, progress=False)
    assert h.epochs[0]["images"] == 100 and "val_loss" not in h.epochs[0]
    h = cnnzoo.fit(
        _net(),
        ds.train_images,
        ds.train_labels,
        epochs=1,
        batch_size=10,
        validation_split=0.2,
        progress=False,
    )
    assert h.epochs[0]["images"] == 80 and "val_loss" in h.epochs[0]


def test_model_is_handed_back_contiguous():
    ds = synthetic(n_train=64)
    model = _net()
    cnnzoo.fit(model, ds.train_images, ds.train_labels, epochs=1, batch_size=32, progress=False)
    assert model[0].weight.is_contiguous()


@pytest.mark.parametrize(
    "images, labels, words",
    [
        (np.zeros((4, 28, 28, 2), np.uint8), np.zeros(4, np.int64), "channels"),
        (np.zeros((4, 28, 28), np.uint16) + 1000, np.zeros(4, np.int64), "uint8"),
        (np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.float32), "integer"),
        (np.zeros((4, 28, 28), np.uint8), np.zeros(5, np.int64), "4 class indices"),
    ],
)
def test_bad_arrays_are_one_line_errors(images, labels, words):
    with pytest.raises(ShapeError, match=words):
        cnnzoo.fit(_net(), images, labels, epochs=1, progress=False)


def test_evaluate_takes_keras_arrays():
    x, y, xv, yv = _keras_arrays(64)
    model = _net()
    cnnzoo.fit(model, x, y, epochs=1, batch_size=32, progress=False)
    m = cnnzoo.evaluate(model, xv, yv)
    assert m["count"] == len(yv)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(xv), torch.from_numpy(yv.astype(np.int64))), batch_size=16
    )
    assert cnnzoo.evaluate(model, loader)["accuracy"] == pytest.approx(m["accuracy"])


def test_fit_shares_the_cli_thread_budget_unless_a_seed_fixes_it(monkeypatch):
    """Without seed= fit adapts its threads to the free cores as `cnnzoo train` does (cnnzoo.threads);
    seed= keeps a fixed thread count, which exact repetition needs."""
    import cnnzoo.train.setup as setup
    from cnnzoo.threads import CpuBudget

    asked = []

    class Recording(CpuBudget):
        def __init__(self, requested=None, cores=None):
            asked.append(requested)
            super().__init__(requested, cores)

    monkeypatch.setattr(setup, "CpuBudget", Recording)
    ds = synthetic(n_train=32)
    cnnzoo.fit(_net(), ds.train_images, ds.train_labels, epochs=1, batch_size=16, progress=False)
    cnnzoo.fit(_net(), ds.train_images, ds.train_labels, epochs=1, batch_size=16, progress=False, seed=3)
    assert asked == [None, torch.get_num_threads()]  # None: the budget decides, as for the CLI
