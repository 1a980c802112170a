"""Several inputs and integer inputs: the analyzer's figures equal torchinfo's on the same modules."""

import inspect
import subprocess
import sys

import pytest
import torch
import torchinfo
from torch import nn

import cnnzoo
from cnnzoo.errors import CnnzooError


class ImageAndTable(nn.Module):
    """An image and a vector of 10 features, joined before the head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.meta = nn.Linear(10, 8)
        self.head = nn.Linear(16, 5)

    def forward(self, img, extra):
        a = self.pool(self.conv(img)).flatten(1)
        return self.head(torch.cat([a, self.meta(extra)], 1))


class Tokens(nn.Module):
    """Token indices through an embedding, a 1-D convolution and a linear head."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.conv = nn.Conv1d(16, 8, 3)
        self.fc = nn.Linear(8, 2)

    def forward(self, t):
        return self.fc(self.conv(self.emb(t).transpose(1, 2)).mean(2))


def _torchinfo_rows(info) -> list[tuple[str, list[int], int]]:
    return [(r.var_name, r.output_size[1:], r.num_params) for r in info.summary_list if r.is_leaf_layer]


def test_two_inputs_equal_torchinfo():
    model = ImageAndTable()
    info = torchinfo.summary(model, input_size=[(1, 3, 32, 32), (1, 10)], verbose=0)
    s = cnnzoo.summary(model, [(3, 32, 32), (10,)], convention="torchinfo")
    assert [(r.name, r.output_shape, r.params) for r in s.layers] == _torchinfo_rows(info)
    assert s.total["params"] == info.total_params
    assert (s.convention["macs"], s.convention["params"]) == (info.total_mult_adds, info.total_params)
    assert s.to_dict()["inputs"] == [[3, 32, 32], [10]]
    assert s.to_dict()["dtypes"] == ["float32", "float32"]


def test_integer_token_input_equals_torchinfo():
    model = Tokens()
    info = torchinfo.summary(model, input_size=(1, 12), dtypes=[torch.long], verbose=0)
    s = cnnzoo.summary(model, (12,), dtype="int64", convention="torchinfo")
    assert [(r.name, r.output_shape, r.params) for r in s.layers if r.type != "mean"] == _torchinfo_rows(info)
    assert (s.convention["macs"], s.convention["params"]) == (info.total_mult_adds, info.total_params)
    # the convolution's MACs by hand: 8 outputs × 10 positions × 16 channels × 3 taps
    assert s.layer("conv").macs == 8 * 10 * 16 * 3


def test_bad_dtypes_are_refused():
    with pytest.raises(CnnzooError, match="unknown dtype 'int65'"):
        cnnzoo.summary(Tokens(), (12,), dtype="int65")
    with pytest.raises(CnnzooError, match="2 dtypes for 1 inputs"):
        cnnzoo.summary(Tokens(), [(12,)], dtype=["int64", "int64"])


@pytest.mark.slow
def test_cli_several_inputs_and_a_dtype(tmp_path):
    (tmp_path / "nets.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        + "\n".join(inspect.getsource(c) for c in (ImageAndTable, Tokens))
    )
    run = [sys.executable, "-m", "cnnzoo", "summary"]
    out = subprocess.run(
        [*run, "nets.py:ImageAndTable", "--input", "3x32x32", "--input", "10", "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info = torchinfo.summary(ImageAndTable(), input_size=[(1, 3, 32, 32), (1, 10)], verbose=0)
    assert f'"params": {info.total_params}' in out
    out = subprocess.run(
        [*run, "nets.py:Tokens", "--input", "12", "--dtype", "int64", "--convention", "torchinfo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info = torchinfo.summary(Tokens(), input_size=(1, 12), dtypes=[torch.long], verbose=0)
    assert f"as torchinfo counts: {info.total_mult_adds:,} MACs" in out
