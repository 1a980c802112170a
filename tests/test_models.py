"""Generic checks over every registered model (timm's pattern), driven by the registry alone: no model is named
here, so a new family (at any input size) is tested without an edit. The architecture details of each
family are in tests/test_architectures.py.

The zoo-wide tests run every model in the full suite; the fast lane (``-m "not slow"``) runs one
representative per family (tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.errors import CnnzooError
from cnnzoo.models import get_model_info
from cnnzoo.shapes import smallest_input

ALL = cnnzoo.list_models()
# A real forward/backward at an ImageNet size is too slow on 2 shared cores: models built for more than this
# side run it at the smallest side their builder accepts (at least MIN_SIDE); the meta-device test below
# covers their true default size.
REAL_SIDE_LIMIT = 64
MIN_SIDE = 16


def _builds(name: str, side: int) -> bool:
    c = get_model_info(name).input_size[0]
    try:
        with torch.device("meta"):
            cnnzoo.create_model(name, input_size=side)(torch.empty(2, c, side, side))
    except (CnnzooError, RuntimeError):
        return False
    return True


def _small_build(name: str, num_classes: int = 7) -> nn.Module:
    """The model at its card's input size, or, above REAL_SIDE_LIMIT, at the smallest side that works."""
    side = get_model_info(name).input_size[1]
    if side <= REAL_SIDE_LIMIT:
        return cnnzoo.create_model(name, num_classes=num_classes)
    small = max(MIN_SIDE, smallest_input(lambda n: _builds(name, n), start=MIN_SIDE, limit=side))
    return cnnzoo.create_model(name, num_classes=num_classes, input_size=small)


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_reset(name):
    torch.manual_seed(0)
    model = _small_build(name)
    x = torch.randn(2, *model.card.input_size)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.float().pow(2).mean().backward()  # a loss that reaches every output
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name}: {pname} got no gradient"
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)


@pytest.mark.parametrize("name", ALL)
def test_meta_forward_at_paper_size(name):
    info = get_model_info(name)
    with torch.device("meta"):
        model = cnnzoo.create_model(name, num_classes=7)
        assert model.card.input_size == info.input_size
        assert model(torch.empty(2, *info.input_size)).shape == (2, 7)


@pytest.mark.parametrize("name", ALL)
def test_in_channels(name):
    """in_channels is configurable (grayscale ImageNet nets, RGB LeNets); the card's size follows it."""
    info = get_model_info(name)
    with torch.device("meta"):
        model = cnnzoo.create_model(name, in_channels=2)
        assert model.card.input_size == (2, *info.input_size[1:])
        assert model(torch.empty(1, *model.card.input_size)).shape == (1, info.num_classes)


@pytest.mark.parametrize("name", ALL)
def test_names_and_descriptions_say_their_source_not_a_seed_number(name):
    info = get_model_info(name)
    assert "seed" not in f"{name} {info.paper} {info.builder.__doc__}".lower()


@pytest.mark.parametrize("name", ALL)
def test_documented(name):
    info = get_model_info(name)
    assert info.paper and info.description, name
    assert "×" in info.builder.__doc__  # names its input size / figures
