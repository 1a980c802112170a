"""``--optimizer muon`` (cnnzoo.train.muon): torch.optim.Muon's update on the hidden layers' weights (a
convolution's filters viewed as a matrix), torch.optim.SGD's on the output layer and the biases. Checked
against the two torch optimizers themselves, step by step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.config import TrainConfig
from cnnzoo.options import OptionError
from cnnzoo.train.muon import MuonSGD, muon_groups, orthogonalise
from cnnzoo.train.optim import make_optimizer, param_groups


def _grads(params, seed):
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)


@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_groups_step_as_torch_optim_muon(nesterov):
    """On 2-D weights (a stack of linear layers) the Muon groups move exactly as torch.optim.Muon moves them,
    and the last layer and the biases exactly as torch.optim.SGD does."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 7), nn.ReLU(), nn.Linear(7, 3))
    ours = MuonSGD(muon_groups(net, param_groups(net, 0.01), 0.02), lr=0.1, momentum=0.9, nesterov=nesterov)
    ref = [p.detach().clone() for p in net.parameters()]
    hidden, rest = [ref[0], ref[2]], [ref[1], ref[3], ref[4], ref[5]]
    muon = torch.optim.Muon(hidden, lr=0.02, weight_decay=0.01, momentum=0.9, nesterov=nesterov)
    sgd = torch.optim.SGD(
        [{"params": [ref[4]], "weight_decay": 0.01}, {"params": [ref[1], ref[3], ref[5]]}],
        lr=0.1,
        momentum=0.9,
        nesterov=nesterov,
    )
    for step in range(4):
        _grads(net.parameters(), step)
        for r, p in zip(ref, net.parameters(), strict=True):
            r.grad = p.grad.clone()
        ours.step()
        muon.step()
        sgd.step()
        for r, p in zip(ref, net.parameters(), strict=True):
            assert torch.equal(r, p.detach())
    assert hidden and rest


def test_a_convolutions_filters_step_as_their_matrix():
    """A (out, in, kh, kw) filter bank moves as torch.optim.Muon moves the (out, in·kh·kw) matrix."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 5), nn.Flatten(), nn.Linear(8, 2))
    ours = MuonSGD(muon_groups(net, param_groups(net, 0.0), 0.05), lr=0.1)
    matrix = net[0].weight.detach().reshape(8, -1).clone()
    muon = torch.optim.Muon([matrix], lr=0.05, weight_decay=0.0, momentum=0.9)
    for step in range(3):
        _grads(net.parameters(), step)
        matrix.grad = net[0].weight.grad.reshape(8, -1).clone()
        ours.step()
        muon.step()
        assert torch.equal(matrix, net[0].weight.detach().reshape(8, -1))


@pytest.mark.parametrize("shape", [(6, 25), (120, 400), (400, 120)])
def test_orthogonalise_flattens_the_spectrum(shape):
    """Singular values near 1 (Jordan: about 0.7..1.2) from a gradient whose spectrum spans two decades. (Five
    steps lift a singular value by at most 3.4445⁵ ≈ 490: those below ~1/500 of the norm stay small.)"""
    g = torch.randn(shape) @ torch.diag(torch.logspace(-1, 1, shape[1]))
    s = torch.linalg.svdvals(orthogonalise(g).float())
    assert 0.5 < s.min() and s.max() < 1.3


def test_fp32_newton_schulz_is_bf16s_up_to_rounding():
    """Without bf16 units the products run in fp32: the same map, to bf16's precision (8 bits of mantissa)."""
    g = torch.randn(84, 120)
    assert torch.allclose(orthogonalise(g, bf16=False), orthogonalise(g).float(), atol=0.05)


def test_the_output_layer_and_biases_are_not_muon():
    model = cnnzoo.create_model("lenet5_modern")
    opt = make_optimizer(model, TrainConfig(optimizer="muon", lr=0.05, muon_lr=0.02))
    muon = [p for g in opt.param_groups if g["muon"] for p in g["params"]]
    weights = [p for p in model.parameters() if p.ndim > 1]
    assert [p.shape for p in muon] == [p.shape for p in weights[:-1]]
    assert all(g["lr"] == (0.02 if g["muon"] else 0.05) for g in opt.param_groups)
    assert not opt.param_groups[0]["muon"]  # group 0's lr is the one fit's metrics report: --lr


def test_muon_layers_conv_leaves_the_fully_connected_layers_to_sgd():
    """--muon-layers conv: VGG-11's convolutions are Muon's, its 4096-wide FC layers SGD's (not 2 TFLOP a step)."""
    model = cnnzoo.create_model("vgg11", input_size=32)
    opt = make_optimizer(model, TrainConfig(optimizer="muon", lr=0.01, muon_lr=0.02, muon_layers="conv"))
    muon = {id(p) for g in opt.param_groups if g["muon"] for p in g["params"]}
    assert muon == {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Conv2d)}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    hidden = make_optimizer(
        model, TrainConfig(optimizer="muon", lr=0.01, muon_lr=0.02)
    )  # the default: the hidden FC layers too
    assert {tuple(p.shape) for g in hidden.param_groups if g["muon"] for p in g["params"]} >= {(4096, 4096)}


def test_a_backbone_learning_rate_scales_muons_too():
    """--lr-backbone 0.005 with --lr 0.05: the backbone's Muon group learns at a tenth of --muon-lr."""
    model = cnnzoo.create_model("resnet20")
    opt = make_optimizer(model, TrainConfig(optimizer="muon", lr=0.05, lr_backbone=0.005, muon_lr=0.02))
    assert sorted({round(g["lr"], 6) for g in opt.param_groups if g["muon"]}) == [0.002]
    assert sorted({round(g["lr"], 6) for g in opt.param_groups if not g["muon"]}) == [0.005, 0.05]


def test_muon_lr_is_checked():
    with pytest.raises(OptionError, match="muon_lr"):
        cnnzoo.config.config_from({"muon_lr": 0.0})
    with pytest.raises(OptionError, match="muon_layers"):
        cnnzoo.config.config_from({"muon_layers": "fc"})
    with pytest.raises(ValueError, match="layers"):
        muon_groups(cnnzoo.create_model("lenet5_modern"), [], 0.02, layers="fc")
