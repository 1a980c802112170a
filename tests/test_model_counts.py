"""Parameter counts, MACs and receptive fields against the published figures in /work/shared/REFERENCE.md.

Big models are built on the meta device, so counting 144M parameters costs nothing. The analyzer checks
(``cnnzoo.summary``) compare with torchvision's published ``_ops`` (G MACs at 224) and the papers.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnzoo


def n_params(name: str, trainable_only: bool = False, **kwargs) -> int:
    with torch.device("meta"):
        model = cnnzoo.create_model(name, **kwargs)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def published(field: str) -> dict:
    """``{name: figure}`` for every registered model whose sources publish ``field`` (the registry metadata is
    the one place the figures are written: REFERENCE.md, the papers, torchvision)."""
    infos = (cnnzoo.get_model_info(name) for name in cnnzoo.list_models())
    figures = {i.name: getattr(i.published, field) for i in infos if i.published is not None}
    return {name: v for name, v in figures.items() if v is not None}


PUBLISHED_PARAMS = published("params")


def test_every_count_of_reference_md_is_in_the_registry():
    # REFERENCE.md's tables: 5 course/tutorial LeNets and AlexNets, 6 VGG configs, 10 ResNets
    assert len(PUBLISHED_PARAMS) >= 5 + 3 + 6 + 10


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMS))
def test_published_parameter_counts(name):
    assert n_params(name) == PUBLISHED_PARAMS[name]


def test_lenet5_1998_counts():
    # 60,000 trainable; the RBF layer's 840 centres are fixed
    paper = cnnzoo.get_model_info("lenet5").published
    assert n_params("lenet5", trainable_only=True) == paper.trainable_params == 60_000
    assert n_params("lenet5") == paper.params == 60_000 + 840


def test_keras_three_conv_per_layer():
    model = cnnzoo.create_model("keras_three_conv")
    per_layer = [
        sum(p.numel() for p in m.parameters())
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    assert per_layer == [320, 18_496, 73_856, 8_256, 650]  # seed 004


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_plain_cifar_nets_have_the_resnets_parameters(depth):
    # option A shortcuts have no parameters, so removing them changes no count (paper Fig. 6 compares like for like)
    assert n_params(f"plain{depth}") == PUBLISHED_PARAMS[f"resnet{depth}"]


def test_vgg_table_1_rounded_millions():
    # the paper's Table 2 "number of parameters (in millions)": 133, 133, 134, 138, 144
    for name, millions in [("vgg11", 133), ("vgg13", 133), ("vgg16_c", 134), ("vgg16", 138), ("vgg19", 144)]:
        assert round(n_params(name) / 1e6) == millions


# --- analyzer ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def summary():
    return pytest.importorskip("cnnzoo.analysis.summary").summary


def _total(summary, name, input_size, **kwargs):
    return summary(name, input_size=input_size, **kwargs).to_dict()["total"]


@pytest.mark.parametrize("name, gmacs", published("gmacs").items())
def test_macs_match_torchvision(summary, name, gmacs):
    macs = _total(summary, name, (3, 224, 224))["macs"]
    assert macs == pytest.approx(gmacs * 1e9, rel=0.005)


@pytest.mark.parametrize("name, paper_gflops", [("resnet50", 3.8), ("resnet101", 7.6), ("resnet152", 11.3)])
def test_paper_v1_stride_placement_gives_the_papers_flops(summary, name, paper_gflops):
    """The paper's Table 1 "FLOPs" (mult-adds) are for v1 (stride in the first 1×1): within 2% of 3.8/7.6/11.3."""
    v1 = _total(summary, name, (3, 224, 224), stride_in_1x1=True)["macs"]
    v15 = _total(summary, name, (3, 224, 224))["macs"]
    assert v1 < v15
    assert v1 == pytest.approx(paper_gflops * 1e9, rel=0.02)


def test_inception_1x1_cost_example(summary):
    def conv_macs(name):
        layers = summary(name, input_size=(192, 28, 28)).to_dict()["layers"]
        return [row["macs"] for row in layers if row["type"] == "Conv2d"]

    assert conv_macs("inception_naive_5x5") == [120_422_400]
    assert conv_macs("inception_bottleneck_5x5") == [2_408_448, 10_035_200]  # 12,443,648 in all


def test_one_by_one_conv_figures(summary):
    from cnnzoo.models.bottleneck import Bottleneck1x1

    block = Bottleneck1x1(192, None, 32, kernel_size=1)  # a lone 1×1 conv, 192 -> 32 maps
    row = next(
        r for r in summary(block, input_size=(192, 28, 28)).to_dict()["layers"] if r["type"] == "Conv2d"
    )
    assert (row["params"], row["macs"], row["output_shape"]) == (6_176, 4_816_896, [32, 28, 28])


def test_vgg16_receptive_fields(summary):
    layers = {r["name"]: r for r in summary("vgg16", input_size=(3, 224, 224)).to_dict()["layers"]}
    assert layers["features.28"]["type"] == "Conv2d"  # conv5_3
    assert layers["features.28"]["receptive_field"]["size"] == 196
    assert layers["features.30"]["type"] == "MaxPool2d"  # pool5
    assert layers["features.30"]["receptive_field"]["size"] == 212
    assert layers["features.30"]["receptive_field"]["jump"] == 32


@pytest.mark.parametrize(
    "name", ["lenet5", "lenet_d2l", "alexnet_paper", "vgg16_bn", "resnet110", "resnet50"]
)
def test_analyzer_params_equal_numel(summary, name):
    with torch.device("meta"):
        model = cnnzoo.create_model(name)
    total = summary(model, input_size=model.card.input_size).to_dict()["total"]
    assert total["params"] == sum(p.numel() for p in model.parameters())
    assert total["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
