"""Networks written the way other people write them: functional pooling (the PyTorch tutorial's LeNet), a
functional convolution on a parameter, transposed convolutions, attention after a convolution. Their counts
are checked against fvcore and torchinfo (tools we did not write) or a hand count, and their receptive fields
against the support of the input gradient of one output unit (all-positive weights and inputs, average
pooling: the theoretical field exactly)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.analysis.dispatch import UncountedOperation
from cnnzoo.analysis.summary import summary


class TutorialLeNet(nn.Module):
    """The PyTorch "Neural Networks" tutorial's LeNet (pooling with F.max_pool2d)."""

    def __init__(self, pool=F.max_pool2d):
        super().__init__()
        self.pool = pool
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)), (2, 2))
        x = self.pool(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class FunctionalConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 3, 3, 3))

    def forward(self, x):
        return F.conv2d(x, self.w)


class EncoderDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.dec = nn.Sequential(nn.ConvTranspose2d(16, 8, 3, 2), nn.ReLU(), nn.ConvTranspose2d(8, 1, 2, 2))

    def forward(self, x):
        return self.dec(self.enc(x))


class ConvAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x):
        t = self.conv(x).flatten(2).transpose(1, 2)
        return self.attn(t, t, t)[0]


NETS = [
    (TutorialLeNet, (1, 32, 32)),
    (FunctionalConv, (3, 32, 32)),
    (EncoderDecoder, (1, 32, 32)),
    (ConvAttention, (3, 8, 8)),
]


@pytest.mark.parametrize(("cls", "size"), NETS, ids=lambda v: getattr(v, "__name__", ""))
def test_counts_match_fvcore_and_torchinfo(cls, size):
    from fvcore.nn import FlopCountAnalysis
    from torchinfo import summary as torchinfo_summary

    model = cls().eval()
    s = summary(model, size)
    fv = FlopCountAnalysis(model, torch.randn(1, *size))
    fv.unsupported_ops_warnings(False)
    assert s.total["macs"] == fv.total()  # fvcore's "flops" are MACs
    assert s.total["params"] == torchinfo_summary(model, input_size=(1, *size), verbose=0).total_params
    for key in ("params", "trainable_params", "macs", "flops", "activation_bytes"):
        assert sum(getattr(r, key) for r in s.layers) == s.total[key], key


def test_hand_counts():
    # F.conv2d(x, w), w 8×3×3×3 on 3×32×32: 8·30·30 outputs of 27 MACs each
    assert summary(FunctionalConv(), (3, 32, 32)).total["macs"] == 8 * 30 * 30 * 27
    # a transposed conv: every input element meets every kernel tap (16·8·3·3 per input position of 8×8)
    s = summary(EncoderDecoder(), (1, 32, 32))
    assert s.layer("dec.0").macs == 8 * 8 * 16 * 8 * 3 * 3
    assert s.layer("dec.0").output_shape == [8, 17, 17]
    # attention's parameters are all in rows: 3·16·16 + 3·16 in the projections, 16·16 + 16 out
    a = summary(ConvAttention(), (3, 8, 8))
    assert sum(r.params for r in a.layers) == 3 * 16 * 16 + 3 * 16 + 16 * 16 + 16 + 3 * 16 * 9 + 16


def _gradient_extent(model, size, unit) -> tuple[int, int]:
    """(rows, cols) of the input that one output unit's gradient reaches."""
    for p in model.parameters():
        p.data = p.data.abs() + 0.1
    x = torch.rand(1, *size) + 0.1
    x.requires_grad_(True)
    out = model(x)
    out[unit].backward()
    rows = x.grad[0].abs().sum(dim=(0, 2)).nonzero()
    cols = x.grad[0].abs().sum(dim=(0, 1)).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def _predicted_extent(rf, index: int, side: int) -> int:
    """The field of unit ``index`` clipped to the image."""
    size, jump, start = (rf.to_dict()[k] for k in ("size", "jump", "start"))
    centre = start + index * jump
    lo, hi = max(0, centre - size / 2), min(side, centre + size / 2)
    return int(round(hi - lo))


def test_receptive_fields_match_the_gradient():
    net = TutorialLeNet(pool=F.avg_pool2d)
    s = summary(net, (1, 32, 32))
    assert s.layer("avg_pool2d").receptive_field.to_dict()["size"] == 6
    assert s.layer("conv2").receptive_field.to_dict()["size"] == 14
    assert s.layer("fc1").receptive_field.to_dict()["size"] == 32
    assert _gradient_extent(net, (1, 32, 32), (0, 3)) == (32, 32)
    conv = nn.Sequential(net.conv1, nn.ReLU(), nn.AvgPool2d(2), net.conv2)
    rf = s.layer("conv2").receptive_field
    assert _gradient_extent(conv, (1, 32, 32), (0, 0, 4, 4)) == (_predicted_extent(rf, 4, 32),) * 2
    # the max-pooled tutorial net has the same fields
    tutorial = summary(TutorialLeNet(), (1, 32, 32))
    assert tutorial.layer("conv2").receptive_field == rf

    ed = EncoderDecoder()
    s = summary(ed, (1, 32, 32))
    rf = s.layers[-1].receptive_field
    for i in (5, 6, 16, 17):
        assert _gradient_extent(EncoderDecoder(), (1, 32, 32), (0, 0, i, i))[0] <= rf.to_dict()["size"]
    assert (
        max(_gradient_extent(ed, (1, 32, 32), (0, 0, i, i))[0] for i in range(2, 30)) == rf.to_dict()["size"]
    )

    s = summary(FunctionalConv(), (3, 32, 32))
    assert _gradient_extent(FunctionalConv(), (3, 32, 32), (0, 0, 5, 5)) == (3, 3)
    assert s.layers[-1].receptive_field.to_dict()["size"] == 3

    s = summary(ConvAttention(), (3, 8, 8))
    assert _gradient_extent(ConvAttention(), (3, 8, 8), (0, 0, 0)) == (8, 8)
    assert s.layers[-1].receptive_field.to_dict()["size"] == 8


class FFTNet(nn.Module):
    def forward(self, x):
        return torch.fft.rfft2(x).abs()


def test_an_operation_without_a_rule_is_named_or_marked():
    with pytest.raises(UncountedOperation, match=r"^cannot count the operation '_fft_r2c' run by 'FFTNet'"):
        summary(FFTNet(), (1, 8, 8))
    s = summary(FFTNet(), (1, 8, 8), allow_uncounted=True)
    assert [r.note for r in s.layers if r.note] == ["uncounted: _fft_r2c"]
    assert "* FFTNet: uncounted: _fft_r2c" in str(s)


def test_explain_says_where_a_dispatcher_count_comes_from():
    s = summary(EncoderDecoder(), (1, 32, 32))
    assert s.layer("dec.0").counted_by == "dispatcher" and s.layer("enc.0").counted_by == "rule"
    e = s.explain("dec.0", "macs")
    assert e.value == 8 * 8 * 16 * 8 * 3 * 3 and "ATen operations" in e.note
    assert "ATen" in s.explain("dec.0", "macs", lang="zh").note


@pytest.mark.slow
def test_the_cli_refuses_an_uncounted_operation_in_one_line(tmp_path):
    """Through the real CLI, on the user's own file: exit 2, one line naming the operation, no traceback;
    with --allow-uncounted the table is printed with the row marked."""
    import subprocess
    import sys

    (tmp_path / "fftnet.py").write_text(
        "import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n"
        "    def forward(self, x):\n        return torch.fft.rfft2(x).abs()\n"
    )
    cmd = [sys.executable, "-m", "cnnzoo", "summary", "fftnet.py:Net", "--input", "1x8x8"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "_fft_r2c" in line and "Traceback" not in done.stderr
    marked = subprocess.run(
        [*cmd, "--allow-uncounted"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert marked.returncode == 0, marked.stderr
    assert "uncounted: _fft_r2c" in marked.stdout
