"""torchvision's state dicts load into our AlexNet/VGG/ResNet unchanged and give the same outputs.

Each torchvision model is built once with its own random initialisation; its batch-norm parameters and running
statistics are then randomised too (otherwise every BN is an identity and swapped BN names would go unnoticed).
Ours is built on the meta device (no second 100M-parameter initialisation) and takes torchvision's tensors with
``load_state_dict(..., strict=True, assign=True)``, which still checks every name and shape. Inputs are small
(the adaptive average pools make the heads size-independent) to keep this fast on CPU.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import cnnzoo

# our name -> input side used for the comparison
MODELS = {
    "alexnet": 96,
    "vgg11": 32,
    "vgg13": 32,
    "vgg16": 32,
    "vgg19": 32,
    "vgg11_bn": 32,
    "vgg13_bn": 32,
    "vgg16_bn": 32,
    "vgg19_bn": 32,
    "resnet18": 64,
    "resnet34": 64,
    "resnet50": 64,
    "resnet101": 64,
    "resnet152": 64,
}


@torch.no_grad()
def _randomise_batchnorm(model: nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


@pytest.mark.parametrize("name", list(MODELS))
def test_torchvision_weights_load_and_agree(name):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    theirs = getattr(torchvision.models, name)(weights=None).eval()
    _randomise_batchnorm(theirs, gen)
    with torch.device("meta"):
        ours = cnnzoo.create_model(name)
    ours.load_state_dict(theirs.state_dict(), strict=True, assign=True)
    ours.eval()
    assert not any(t.is_meta for t in [*ours.parameters(), *ours.buffers()])
    side = MODELS[name]
    x = torch.randn(1, 3, side, side, generator=gen)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert expected.shape == got.shape == (1, 1000)
    assert float(expected.std()) > 0  # a non-trivial output to compare
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_plain_load_without_assign():
    """The literal contract: ``ours.load_state_dict(torchvision_model.state_dict())`` on a normal build."""
    theirs = torchvision.models.resnet18(weights=None).eval()
    ours = cnnzoo.create_model("resnet18").eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    # and back: our weights load into torchvision's model
    theirs.load_state_dict(cnnzoo.create_model("resnet18", num_classes=1000).state_dict())


def test_small_input_vgg_has_its_own_head():
    """A VGG built for 32×32 has a 512-feature first FC, so torchvision's 25,088-feature weights don't fit:
    torchvision compatibility holds for the default (224) build, which still accepts small inputs."""
    with torch.device("meta"):
        small = cnnzoo.create_model("vgg11", input_size=32)
        theirs = torchvision.models.vgg11(weights=None)
    with pytest.raises(RuntimeError, match="classifier.0.weight"):
        small.load_state_dict(theirs.state_dict(), assign=True)
