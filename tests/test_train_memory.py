"""The predicted memory of a training step against the peak the PyTorch profiler measures on the CPU (its
memory events, in time order, on top of the parameters and the optimizer state already allocated)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnzoo.analysis.train_memory import estimate_train_memory, train_memory
from cnnzoo.card import card_of
from cnnzoo.errors import ShapeError
from cnnzoo.models import create_model


def _measured_peak(model: nn.Module, size, batch: int, optimizer: str) -> int:
    model.train()
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9) if optimizer == "sgd" else torch.optim.Adam(params)
    x, y = torch.randn(batch, *size), torch.randint(0, 10, (batch,))

    def step():
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # the optimizer's state exists from here on, as in any step but the first
    opt.zero_grad(set_to_none=True)
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        step()
    now = peak = 0
    for e in sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start):
        now += e.self_cpu_memory_usage
        peak = max(peak, now)
    resident = sum(p.numel() * p.element_size() for p in params)
    resident += sum(
        t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t)
    )
    return resident + peak


@pytest.mark.parametrize(
    ("name", "optimizer"),
    [
        ("lenet5", "sgd"),
        ("lenet5", "adam"),
        pytest.param("resnet18", "sgd", marks=pytest.mark.slow),
        pytest.param("vgg11", "sgd", marks=pytest.mark.slow),
    ],
)
def test_within_15_percent_of_the_measured_peak(name, optimizer):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    size = (card_of(model).input_size[0], 32, 32)
    predicted = estimate_train_memory(model, size, 32, optimizer)
    assert predicted == pytest.approx(_measured_peak(model, size, 32, optimizer), rel=0.15)


def test_parts_and_refusals():
    m = train_memory("lenet5", (1, 32, 32), batch_size=8, optimizer="adam")
    params = list(create_model("lenet5").parameters())
    n = sum(p.numel() for p in params) * 4
    t = sum(p.numel() for p in params if p.requires_grad) * 4  # (its RBF centres are fixed)
    assert (m.params, m.gradients, m.optimizer_state) == (n, t, 2 * t)
    assert m.activations == sum(m.layers.values()) and m.peak == n + t + 2 * t + m.activations
    # activations grow linearly with the batch (a weight computed in forward, LeNet's masked C3, does not)
    a = [train_memory("lenet5", (1, 32, 32), batch_size=b).activations for b in (8, 16, 24)]
    assert a[2] - a[1] == a[1] - a[0] > 0.9 * a[0]
    with pytest.raises(ShapeError, match="unknown optimizer 'lbfgs'"):
        train_memory("lenet5", (1, 32, 32), 8, "lbfgs")


def test_cli_prints_the_parts_and_the_peak():
    import json

    from cnnzoo.cli import main

    out = _cli(
        main,
        "summary",
        "lenet5",
        "--train-memory",
        "--batch-size",
        "8",
        "--optimizer",
        "adam",
        "--format",
        "json",
    )
    got = json.loads(out)["train_memory"]
    assert got == train_memory("lenet5", (1, 32, 32), 8, "adam").to_dict()
    assert got["peak"] == got["params"] + got["gradients"] + got["optimizer_state"] + got["activations"]


def _cli(main, *args) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(list(args)) == 0
    return buf.getvalue()
