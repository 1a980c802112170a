"""fit on a user's map-style Dataset: read into memory when it fits (without a list of every item), streamed
through a DataLoader when it does not, with the same batches, so ``seed=`` repeats a run exactly either way.

The Dataset below counts its ``__getitem__`` calls and the images it handed out that are still alive
(weak references): what a reader that keeps every item, or a stream that reads ahead, would show."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import pytest
import torch
from helpers import synthetic
from torch import nn
from torch.utils.data import Dataset

import cnnzoo
import cnnzoo.train.mapstyle as mapstyle
from cnnzoo.errors import ShapeError


class Counting(Dataset):
    """uint8 28×28 images (H×W) and int labels, as a user's ``__getitem__`` decoding files would give them."""

    def __init__(self, n=192, bad=None, seed=0):
        ds = synthetic(n_train=n, n_test=1, seed=seed)
        self.x, self.y, self.bad = ds.train_images[:, 0], ds.train_labels, bad
        self.calls, self.alive, self.peak = 0, [], 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.calls += 1
        image = self.x[i].clone() if i != self.bad else torch.zeros(29, 28, dtype=torch.uint8)
        self.alive = [r for r in self.alive if r() is not None] + [weakref.ref(image)]
        self.peak = max(self.peak, len(self.alive))
        return image, int(self.y[i])


def _net(channels=1):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 5), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 10)
    )


def _fit(data, y=None, channels=1, **kw):
    model = _net(channels)
    options = dict(epochs=1, batch_size=32, seed=0, workers=0, progress=False) | kw
    history = cnnzoo.fit(model, data, y, **options)
    return model, history


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.fixture
def low_budget(monkeypatch):
    """A machine with 1 kB free: every Dataset is too big for memory."""
    monkeypatch.setattr(mapstyle, "memory_budget", lambda device: (1000, "1 kB on this test"))


def test_a_small_dataset_is_read_once_into_memory_and_trains_as_its_arrays_do():
    ds = Counting(200)
    model, history = _fit(ds)
    assert ds.calls == len(ds)  # each item read once
    assert ds.peak <= 2  # item 0 and the one being copied: never a list of every item
    assert "read into memory: 200 images × 784 bytes" in history.result["header"]
    reference, _ = _fit(ds.x.clone(), ds.y.clone())
    assert _same(model, reference)


def test_a_dataset_too_big_for_memory_is_streamed_in_the_same_batches(low_budget, monkeypatch):
    ds = Counting(192)  # 6 batches of 32: every item in every epoch
    calls = []
    model, history = _fit(ds, epochs=2, on_epoch=lambda record: calls.append(ds.calls))
    header = history.result["header"]
    assert "your Dataset, streamed: 192 images × 784 bytes = 150.5 kB > 1.0 kB" in header
    assert calls[1] - calls[0] == len(ds)  # the second epoch read every item once
    assert ds.peak <= 32 + 1  # a batch of items (and item 0) alive at a time
    assert len(history.epochs) == 2
    again, _ = _fit(Counting(192), epochs=2)
    assert _same(model, again)  # seed= repeats a streamed run exactly
    monkeypatch.undo()
    in_memory, history = _fit(Counting(192), epochs=2)
    assert "read into memory" in history.result["header"]
    assert _same(model, in_memory)  # and it is the run the Dataset gives in memory


def test_a_streamed_split_and_validation_dataset_match_the_in_memory_ones(low_budget, monkeypatch):
    streamed, split = _fit(Counting(160), validation_split=0.2, limit=150)
    _, given = _fit(Counting(128), validation_data=Counting(64, seed=1))
    assert "streamed" in split.result["header"]
    assert "streamed: 128 + 64 images × 784 bytes" in given.result["header"]
    monkeypatch.undo()
    in_memory, split_read = _fit(Counting(160), validation_split=0.2, limit=150)
    _, given_read = _fit(Counting(128), validation_data=Counting(64, seed=1))
    assert _same(streamed, in_memory)
    assert split.epochs[0]["images"] == split_read.epochs[0]["images"] == 96  # 120 training images: 3 batches
    for a, b in ((split, split_read), (given, given_read)):
        assert a.history["val_loss"] == pytest.approx(b.history["val_loss"], rel=1e-6)
        assert a.history["val_accuracy"] == b.history["val_accuracy"]


def test_worker_processes_give_the_same_run(low_budget):
    one, _ = _fit(Counting(96))
    workers, history = _fit(Counting(96), workers=2)
    assert "streamed" in history.result["header"]
    assert _same(one, workers)


class Items(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


@pytest.mark.parametrize("kind", ["numpy H×W×C uint8", "float C×H×W"])
def test_streamed_items_of_any_layout_train_as_their_arrays(kind, low_budget):
    if kind.startswith("numpy"):
        ds = synthetic(n_train=96, n_test=1, channels=3)
        x, y = ds.train_images.permute(0, 2, 3, 1).numpy().copy(), ds.train_labels.numpy()
    else:
        x, y = (
            torch.rand(96, 3, 28, 28, generator=torch.Generator().manual_seed(0)) * 4 - 2,
            torch.arange(96) % 10,
        )
    streamed, history = _fit(Items(x, y), channels=3)
    assert "streamed" in history.result["header"]
    arrays, _ = _fit(x, y, channels=3)
    assert _same(streamed, arrays)


@pytest.mark.parametrize("stream, workers", [(False, 0), (True, 0), (True, 2)])
def test_a_wrong_shaped_item_is_one_line_naming_it(stream, workers):
    with pytest.raises(ShapeError) as error:
        _fit(Counting(96, bad=37), stream=stream, workers=workers)
    message = str(error.value)
    assert "item 37" in message and "(29, 28)" in message and "(28, 28)" in message
    assert "\n" not in message


def test_the_budget_is_a_share_of_the_free_memory():
    from cnnzoo.data.stream import MEMORY_SHARE, available_memory

    budget, words = mapstyle.memory_budget("cpu")
    assert 0 < budget <= MEMORY_SHARE * available_memory() * 1.5  # the free memory moves between reads
    assert f"{MEMORY_SHARE:.0%} of the" in words


# Two ranks streaming a Dataset (each its share of every global batch, of the validation set) must train
# what one process trains reading it into memory.
DDP_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    sys.path.insert(0, sys.argv[2])
    import cnnzoo.train.mapstyle as mapstyle
    from test_fit_dataset import Counting, _fit

    torch.set_num_threads(1)
    mapstyle.memory_budget = lambda device: (1000, "1 kB")
    model, history = _fit(Counting(128), validation_data=Counting(64, seed=1), epochs=2, bf16=False)
    if os.environ["RANK"] == "0":
        torch.save({"params": [p.detach() for p in model.parameters()], "history": history.history,
                    "header": history.result["header"]}, sys.argv[1])
    """
)


@pytest.mark.slow
def test_two_ranks_streaming_train_what_one_process_reading_it_trains(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    args = [str(tmp_path / "ddp.pt"), str(Path(__file__).parent)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    assert "streamed" in ddp["header"]
    torch.set_num_threads(1)
    model, history = _fit(Counting(128), validation_data=Counting(64, seed=1), epochs=2, bf16=False)
    for a, b in zip(ddp["params"], model.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach(), atol=1e-6, rtol=0)
    assert ddp["history"]["val_accuracy"] == history.history["val_accuracy"]  # each image counted once
    assert ddp["history"]["images"] == history.history["images"]


def test_a_resumed_streamed_run_continues_it(low_budget, tmp_path):
    steady = dict(schedule="constant", out=tmp_path / "run")  # a schedule that does not depend on epochs=
    whole, _ = _fit(Counting(96), epochs=2, schedule="constant")
    _fit(Counting(96), epochs=1, **steady)
    resumed, history = _fit(Counting(96), epochs=2, resume=True, **steady)
    assert "streamed" in history.result["header"] and len(history.epochs) == 2
    assert _same(whole, resumed)
