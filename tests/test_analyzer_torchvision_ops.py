"""The analyzer against torchvision's published operation counts, on every classification model.

torchvision publishes each weight's ``meta["_ops"]`` (its "GFLOPS", which are GMACs: multiply-accumulates,
fvcore's convention) for the weights' crop size. Each model is built on the meta device (no weights, no
memory) and analysed at that size: the MACs must be within 1% and the rows must add up to the totals.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torchvision
from torchvision.models import get_model, get_model_weights, list_models

from cnnzoo.analysis.summary import summary

FAST = ("resnet50", "vit_b_16", "swin_t", "maxvit_t", "mobilenet_v3_small", "regnet_y_400mf")
ALL = list_models(module=torchvision.models)


@contextlib.contextmanager
def _regnet_widths_on_cpu():
    """RegNet's builder computes its block widths with tensors and reads them back (``.tolist()``), which a
    meta tensor cannot do: that arithmetic runs on the CPU, the layers are still built on meta."""
    from torchvision.models.regnet import BlockParams

    original = BlockParams.__dict__["from_init_params"]

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return original.__func__(cls, *args, **kwargs)

    BlockParams.from_init_params = classmethod(on_cpu)
    try:
        yield
    finally:
        BlockParams.from_init_params = original


def _build(name: str):
    weights = get_model_weights(name).DEFAULT
    crop = weights.transforms().crop_size[0]
    # ViTs' position embeddings depend on the image size: the weights' own (vit_h_14's SWAG weights: 518)
    kwargs = {"image_size": crop} if name.startswith("vit_") else {}
    with _regnet_widths_on_cpu(), torch.device("meta"):
        model = get_model(name, **kwargs)
    return model, crop, weights.meta["_ops"]


def _check(name: str) -> None:
    model, crop, published = _build(name)
    s = summary(model, (3, crop, crop))
    # published to 3 decimals (shufflenet_v2_x0_5: 0.04): 1%, or half the last digit where that is more
    assert s.total["macs"] / 1e9 == pytest.approx(published, rel=0.01, abs=5e-4), name
    for key in ("params", "trainable_params", "macs", "flops", "connections", "activation_bytes"):
        assert sum(getattr(r, key) for r in s.layers) == s.total[key], key
    assert s.total["params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", FAST)
def test_published_ops_representatives(name):
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ALL if n not in FAST])
def test_published_ops_every_classification_model(name):
    _check(name)
