"""Inputs other than one C×H×W image: a batch, sequences (C×L), volumes (C×D×H×W), a forward that reads
its data; counts against fvcore (a tool we did not write)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnzoo.analysis.summary import summary
from cnnzoo.errors import ShapeError


def _fvcore(model, *size) -> int:
    from fvcore.nn import FlopCountAnalysis

    fca = FlopCountAnalysis(model.eval(), torch.randn(1, *size))
    return fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False).total()


def test_batch_dimension_keeps_per_image_figures():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    one, batch = summary(net, "3x16x16"), summary(net, "4x3x16x16")
    assert batch.total["macs"] == one.total["macs"] == _fvcore(net, 3, 16, 16)
    assert batch.total["batch"] == 4 and batch.input == (3, 16, 16)


def test_sequences_and_volumes():
    seq = nn.Sequential(nn.Conv1d(2, 8, 5), nn.ReLU(), nn.ConvTranspose1d(8, 4, 3, stride=2))
    s = summary(seq, "2x100")
    assert s.total["macs"] == _fvcore(seq, 2, 100)
    assert s.layers[-1].output_shape == list(seq(torch.randn(1, 2, 100)).shape[1:])
    vol = nn.Sequential(nn.Conv3d(1, 4, 3), nn.ReLU(), nn.MaxPool3d(2), nn.Conv3d(4, 2, 3))
    v = summary(vol, "1x8x16x16")  # C×D×H×W: the first layer is a 3-D convolution
    assert v.input == (1, 8, 16, 16) and v.total["macs"] == _fvcore(vol, 1, 8, 16, 16)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.a(x) if x.mean() > 0 else self.b(x)


def test_a_forward_that_reads_its_data_runs_for_real():
    s = summary(Branchy(), (3, 8, 8))
    assert s.total["macs"] == 4 * 6 * 6 * 27
    assert s.notes and "ran for real" in s.notes[0] and "ran for real" in str(s)


def test_the_smallest_input_named_is_one_that_ran():
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(9216, 10),
    )
    with pytest.raises(ShapeError) as e:
        summary(net, (1, 4, 4))
    text = str(e.value)
    if "smallest input that works is" in text:
        side = int(text.split("works is 1×")[1].split("×")[0])
        net(torch.randn(1, 1, side, side))  # runs
    else:
        assert "No square input tried" in text
