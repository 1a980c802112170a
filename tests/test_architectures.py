"""The architecture details the papers and courses state, model by model: shapes, shortcuts, LRN, grouped convs,
small-input rules, initialisation, feature maps. (tests/test_models.py holds the checks every model passes.)"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.features import feature_layer_names, feature_maps
from cnnzoo.models.resnet import BasicBlock, Bottleneck, PlainBlock, ZeroPadShortcut

# --- LeNet family ------------------------------------------------------------------------------------


def _meta_maps(model, shape, layers):
    with torch.device("meta"):
        return {k: tuple(v.shape[1:]) for k, v in feature_maps(model, torch.empty(1, *shape), layers).items()}


def test_d2l_shapes_match_seed_002():
    model = cnnzoo.create_model("lenet_d2l")
    maps = _meta_maps(model, (1, 28, 28), ["features.pool1", "features.conv2", "features.pool2"])
    assert maps == {"features.pool1": (6, 12, 12), "features.conv2": (16, 8, 8), "features.pool2": (16, 4, 4)}
    assert isinstance(model.features.act1, nn.Sigmoid) and isinstance(model.classifier.act_fc1, nn.Sigmoid)


def test_ng_lenet_shapes_match_seed_000():
    model = cnnzoo.create_model("lenet5_ng")
    maps = _meta_maps(
        model, (1, 32, 32), ["features.conv1", "features.pool1", "features.conv2", "features.pool2"]
    )
    assert list(maps.values()) == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5)]
    assert isinstance(model.features.pool1, nn.AvgPool2d)


def test_keras_models_flatten_sizes():
    # seed 003: 28 -> 25 -> 8 -> 5 -> 1 (64 features); seed 004: 28 -> 26 -> 13 -> 11 -> 5 -> 3 -> 1 (128)
    assert cnnzoo.create_model("keras_mnist_cnn").classifier.fc1.in_features == 64
    assert cnnzoo.create_model("keras_three_conv").classifier.fc1.in_features == 128


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_lenet5_modern_overrides(activation, pool):
    model = cnnzoo.create_model("lenet5_modern", activation=activation, pool=pool)
    act_type = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[activation]
    pool_type = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pool]
    assert sum(isinstance(m, act_type) for m in model.modules()) == 4  # 2 conv + 2 hidden FC
    assert sum(isinstance(m, pool_type) for m in model.modules()) == 2
    # padding 2 on 28×28 = the paper's 32×32 geometry: 400 features into the first FC
    assert model.classifier.fc1.in_features == 400
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_lenet5_modern_rejects_unknown_options():
    with pytest.raises(CnnzooError, match="activation"):
        cnnzoo.create_model("lenet5_modern", activation="gelu")
    with pytest.raises(CnnzooError, match="pool"):
        cnnzoo.create_model("lenet5_modern", pool="median")


def test_small_cnn_too_small_input_names_layer_and_size():
    with pytest.raises(ShapeError, match=r"pool2.*at least 16×16"):
        cnnzoo.create_model("lenet_d2l", input_size=12)
    model = cnnzoo.create_model("lenet_d2l", input_size=(36, 36))
    assert model.classifier.fc1.in_features == 16 * 6 * 6


def test_lenet5_feature_maps_are_the_papers_layers():
    model = cnnzoo.create_model("lenet5").eval()
    names = feature_layer_names(model)
    assert names[:8] == ["c1", "act1", "s2", "act2", "c3", "act3", "s4", "act4"]
    x = torch.randn(1, 1, 32, 32)
    maps = feature_maps(model, x)
    assert [tuple(maps[n].shape[1:]) for n in ("c1", "s2", "c3", "s4", "c5")] == [
        (6, 28, 28),
        (6, 14, 14),
        (16, 10, 10),
        (16, 5, 5),
        (120, 1, 1),
    ]
    torch.testing.assert_close(maps["c1"], model.c1(x))


def test_feature_maps_survive_inplace_relu():
    model = cnnzoo.create_model("vgg11", input_size=32, width=0.125, fc_features=16).eval()
    x = torch.randn(1, 3, 32, 32)
    maps = feature_maps(model, x, ["features.0", "features.1"])
    conv = model.features[0](x)
    assert conv.min() < 0  # a raw conv output has negatives; an in-place ReLU would have clipped them
    torch.testing.assert_close(maps["features.0"], conv)
    torch.testing.assert_close(maps["features.1"], conv.relu())
    assert model.features[1].inplace  # restored


def test_feature_maps_unknown_layer():
    with pytest.raises(CnnzooError, match="no layer 'c7'"):
        feature_maps(cnnzoo.create_model("lenet5"), torch.zeros(1, 1, 32, 32), ["c7"])


# --- AlexNet ------------------------------------------------------------------------------------------


def test_alexnet_227_shapes_match_seed_000():
    model = cnnzoo.create_model("alexnet_ng")
    maps = _meta_maps(
        model, (3, 227, 227), ["features.0", "features.2", "features.3", "features.5", "features.12"]
    )
    assert list(maps.values()) == [(96, 55, 55), (96, 27, 27), (256, 27, 27), (256, 13, 13), (256, 6, 6)]
    assert model.classifier[0].in_features == 9216


def test_alexnet_paper_towers_and_lrn():
    model = cnnzoo.create_model("alexnet_paper")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]  # conv3 crosses between the GPUs
    kinds = [type(m).__name__ for m in model.features][:8]
    assert kinds == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"] * 2  # LRN after ReLU, before pool
    # the paper's formula: b = a / (k + 1e-4 · Σ_{5 neighbours} a²)^0.75, k = 2
    lrn = model.features[2]
    a = torch.randn(1, 9, 2, 2) * 30
    sq = torch.nn.functional.pad(a.pow(2), (0, 0, 0, 0, 2, 2))  # neighbours c-2..c+2, zero outside
    window = sum(sq[:, i : i + 9] for i in range(5))
    torch.testing.assert_close(lrn(a), a / (2 + 1e-4 * window) ** 0.75)


def test_alexnet_paper_init():
    model = cnnzoo.create_model("alexnet_paper", input_size=67, paper_init=True)  # small FC6, same rule
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [float(c.bias.detach().mean()) for c in convs] == [0.0, 1.0, 0.0, 1.0, 1.0]
    assert abs(float(model.classifier[0].weight.detach().std()) - 0.01) < 1e-3
    assert float(model.classifier[-1].bias.detach().abs().max()) == 0.0


def test_alexnet_too_small():
    with pytest.raises(ShapeError, match="at least 67"):
        cnnzoo.create_model("alexnet_ng", input_size=50)


# --- VGG ----------------------------------------------------------------------------------------------


def test_vgg_configs_match_table_1():
    def layout(name):
        with torch.device("meta"):
            feats = cnnzoo.create_model(name).features
        return [
            m.kernel_size[0] if isinstance(m, nn.Conv2d) else "M"
            for m in feats
            if isinstance(m, (nn.Conv2d, nn.MaxPool2d))
        ]

    weighted = {"vgg11": 11, "vgg13": 13, "vgg16_c": 16, "vgg16": 16, "vgg19": 19}
    for name, depth in weighted.items():
        assert sum(k != "M" for k in layout(name)) + 3 == depth
    c, d = layout("vgg16_c"), layout("vgg16")
    diff = [i for i, (x, y) in enumerate(zip(c, d, strict=True)) if x != y]
    assert diff == [8, 12, 16]  # the last conv of blocks 3-5
    assert c[8] == c[12] == c[16] == 1
    lrn = cnnzoo.create_model("vgg11_lrn", input_size=32, width=0.125, fc_features=8).features
    assert [type(m).__name__ for m in lrn][:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]


def test_vgg_small_input_rule():
    model = cnnzoo.create_model(
        "vgg11", input_size=28, in_channels=1, width=0.5, fc_features=256, num_classes=10
    )
    # 28 -> 14 -> 7 -> 3 -> 1; the fifth pool would empty the map and becomes an Identity at the same index
    assert isinstance(model.features[-1], nn.Identity)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 4
    assert [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)] == [
        32,
        64,
        128,
        128,
        256,
        256,
        256,
        256,
    ]
    assert model.classifier[0].in_features == 256 and model.classifier[0].out_features == 256
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    # a 32×32 build keeps all five pools: 32 -> 1, 512 features
    assert cnnzoo.create_model("vgg16", input_size=32, fc_features=64).classifier[0].in_features == 512


def test_vgg_paper_init():
    model = cnnzoo.create_model("vgg11", input_size=32, fc_features=64, paper_init=True)
    w = model.features[6].weight.detach()  # N(0, variance 1e-2): std 0.1
    assert abs(float(w.std()) - 0.1) < 0.005
    assert float(model.features[6].bias.detach().abs().max()) == 0.0


# --- ResNet ------------------------------------------------------------------------------------------


def test_cifar_resnet_depths_and_option_a():
    for n, name in [(3, "resnet20"), (5, "resnet32"), (9, "resnet56"), (18, "resnet110")]:
        model = cnnzoo.create_model(name)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) + 1 == 6 * n + 2  # option A adds no conv: 6n+2 weighted layers
        assert [
            m.out_channels for m in (model.layer1[0].conv1, model.layer2[0].conv1, model.layer3[0].conv1)
        ] == [16, 32, 64]
    block = cnnzoo.create_model("resnet20").layer2[0]
    assert isinstance(block.downsample, ZeroPadShortcut)
    x = torch.randn(2, 16, 8, 8)
    s = block.downsample(x)
    assert s.shape == (2, 32, 4, 4)
    torch.testing.assert_close(s[:, :16], x[:, :, ::2, ::2])  # identity on the strided grid
    assert float(s[:, 16:].abs().max()) == 0.0  # new channels are zeros
    option_b = cnnzoo.create_model("resnet20", shortcut="B")
    assert isinstance(option_b.layer2[0].downsample[0], nn.Conv2d)


def test_residual_vs_plain_block():
    """With the residual branch silenced (bn2 = 0), a residual block passes relu(x) through; a plain one gives 0."""
    x = torch.randn(2, 8, 5, 5)
    for cls, expected in [(BasicBlock, x.relu()), (PlainBlock, torch.zeros_like(x))]:
        block = cls(8, 8).eval()
        nn.init.zeros_(block.bn2.weight)
        torch.testing.assert_close(block(x), expected)
        assert cls.cnnzoo_block is True
    assert Bottleneck.cnnzoo_block is True
    plain = cnnzoo.create_model("plain34")
    assert all(
        isinstance(b, PlainBlock) and b.downsample is None for s in (plain.layer1, plain.layer4) for b in s
    )


def test_resnet50_stride_placement():
    v15 = Bottleneck(256, 128, stride=2)  # resnet50's layer2[0]
    v1 = Bottleneck(256, 128, stride=2, stride_in_1x1=True)
    assert (v15.conv1.stride, v15.conv2.stride) == ((1, 1), (2, 2))
    assert (v1.conv1.stride, v1.conv2.stride) == ((2, 2), (1, 1))
    x = torch.randn(1, 256, 8, 8)
    assert v1(x).shape == v15(x).shape == (1, 512, 4, 4)
    model = cnnzoo.create_model("resnet50", stride_in_1x1=True, input_size=32)
    assert model.layer3[0].conv1.stride == (2, 2) and model.layer3[1].conv1.stride == (1, 1)


def test_resnet_he_init():
    model = cnnzoo.create_model("resnet56")
    w = model.layer3[1].conv1.weight.detach()  # fan_out = 64·3·3
    assert abs(float(w.std()) - math.sqrt(2 / (64 * 9))) < 0.01
    assert float(model.layer3[1].bn1.weight.detach().min()) == 1.0
    zero = cnnzoo.create_model("resnet20", zero_init_residual=True)
    assert float(zero.layer1[0].bn2.weight.detach().abs().max()) == 0.0


def test_bottleneck1x1_shapes():
    from cnnzoo.models.bottleneck import Bottleneck1x1

    block = Bottleneck1x1(192, 16, 32, kernel_size=5)
    assert block(torch.randn(1, 192, 28, 28)).shape == (1, 32, 28, 28)  # 'same'
    assert block.reduce.kernel_size == (1, 1) and block.reduce.out_channels == 16
