"""VGG's test-time conversion (FC -> conv) and dense evaluation, checked against the original models,
torchvision's VGG-16, sliding-window crops and the output-size arithmetic (REFERENCE.md)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import cnnzoo
from cnnzoo.card import ModelCard, attach_card, card_of
from cnnzoo.convert import PerPosition, score_map_size, to_fully_convolutional
from cnnzoo.dense import dense_predict
from cnnzoo.errors import ConversionError, ShapeError
from cnnzoo.layers import Subsampling
from cnnzoo.models import create_model, get_model_info, list_models
from cnnzoo.plots import save_heatmap
from cnnzoo.shapes import conv_output_size, pool_output_size

# Families whose classifier reads a globally pooled vector: no score map exists, conversion must refuse.
GLOBAL_POOL_FAMILIES = ("resnet", "plain", "inception", "googlenet", "bottleneck")


def _pools_globally(name: str) -> bool:
    info = get_model_info(name)
    return any(f in (info.family + " " + name).lower() for f in GLOBAL_POOL_FAMILIES)


def _build_small(name: str) -> nn.Module:
    """The zoo model at a small input size where its builder allows it (VGG at 224 is slow on 2 cores)."""
    c, h, w = get_model_info(name).input_size
    if h > 64:
        for size in (64, 96, 128, 32):  # a 2×2 map or more before the classifier, if possible
            try:
                return create_model(name, num_classes=10, input_size=size)
            except Exception:  # noqa: BLE001 - builders without input_size, or sizes they refuse
                continue
    return create_model(name, num_classes=10)


def _arith_map_size(model: nn.Module, n: int) -> int:
    """Side of the output map by walking conv/pool modules in order with cnnzoo.shapes — an
    independent check of the fake-tensor shape pass (for sequential nets: VGG, AlexNet, LeNet-5)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = conv_output_size(n, m.kernel_size[0], m.stride[0], m.padding[0], m.dilation[0])
        elif isinstance(m, nn.MaxPool2d):
            n = pool_output_size(n, m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
        elif isinstance(m, Subsampling):
            n = pool_output_size(n, m.kernel_size, m.stride)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            raise AssertionError("a converted net keeps no adaptive pool")
    return n


@pytest.mark.parametrize("name", list_models())
def test_registered_model_converts_exactly(name):
    if _pools_globally(name):
        with torch.device("meta"):  # only shapes matter for the refusal: skip initialising big ResNets
            model = create_model(name)
        with pytest.raises(ConversionError, match="pools globally"):
            to_fully_convolutional(model)
        return
    torch.manual_seed(0)
    model = _build_small(name).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fc = to_fully_convolutional(model).eval()
    c, h, w = model.card.input_size
    x = torch.randn(2, c, h, w)
    with torch.no_grad():
        ref, out = model(x), fc(x)
    assert out.shape == (*ref.shape, 1, 1)
    torch.testing.assert_close(out.flatten(1), ref, rtol=1e-5, atol=1e-5)
    # The original is untouched: same weights, still a vector output, still has its Linear layers.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(isinstance(m, nn.Linear) for m in model.modules())
    assert not any(isinstance(m, nn.Linear) for m in fc.modules())
    # A bigger input gives a real map, of the size the shape pass predicts.
    big = torch.randn(1, c, h + h // 2, w + w // 2)
    with torch.no_grad():
        got = fc(big)
    assert got.shape[:2] == (1, ref.shape[1])
    assert tuple(got.shape[-2:]) == score_map_size(fc, tuple(big.shape[1:]))
    assert got.shape[-1] > 1


@pytest.fixture(scope="module")
def vgg16_tv_weights():
    """VGG-16 carrying a (random-init) torchvision vgg16 state_dict: the zoo's vgg16 if registered (same
    parameter names), else torchvision's own module."""
    torch.manual_seed(0)
    state = torchvision.models.vgg16().state_dict()
    model = (
        create_model("vgg16", num_classes=1000) if "vgg16" in list_models() else torchvision.models.vgg16()
    )
    model.load_state_dict(state)
    if card_of(model) is None:
        attach_card(model, ModelCard(model="vgg16", input_size=(3, 224, 224)))
    return model.eval()


@pytest.fixture(scope="module")
def vgg16_fc(vgg16_tv_weights):
    return to_fully_convolutional(vgg16_tv_weights).eval()


def test_vgg16_torchvision_weights_at_224(vgg16_tv_weights, vgg16_fc):
    model, fc = vgg16_tv_weights, vgg16_fc
    # FC6 is a 7×7 conv over 512 maps, FC7/FC8 1×1 convs: the paper's test-time net, weights only reshaped.
    fc6, fc7, fc8 = (fc.get_submodule(f"classifier.{i}") for i in (0, 3, 6))
    assert (fc6.in_channels, fc6.out_channels, fc6.kernel_size) == (512, 4096, (7, 7))
    assert (fc7.kernel_size, fc8.kernel_size, fc8.out_channels) == ((1, 1), (1, 1), 1000)
    assert torch.equal(fc6.weight, model.classifier[0].weight.reshape(4096, 512, 7, 7))
    assert set(fc.state_dict()) == set(model.state_dict())  # torchvision's names survive
    assert sum(p.numel() for p in fc.parameters()) == 138_357_544  # REFERENCE.md, VGG-16 (D)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(fc(x).flatten(1), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("side, expected", [(224, 1), (256, 2), (384, 6), (512, 10)])
def test_vgg16_score_map_size_follows_the_arithmetic(vgg16_fc, side, expected):
    # pool5 has stride 32; FC6 as a 7×7 conv leaves (side/32 − 7) + 1 positions: 384 -> 12 − 7 + 1 = 6.
    assert (side // 32 - 7) + 1 == expected
    assert _arith_map_size(vgg16_fc, side) == expected
    assert score_map_size(vgg16_fc, (3, side, side)) == (expected, expected)


def test_vgg16_too_small_input_names_the_smallest(vgg16_fc):
    assert score_map_size(vgg16_fc, (3, 384, 512)) == (6, 10)
    with pytest.raises(ShapeError, match="smallest input that works is 3×224×224"):
        score_map_size(vgg16_fc, (3, 200, 224))


class _MiniTorchvisionVGG(nn.Module):
    """torchvision's VGG layout (features -> AdaptiveAvgPool2d((7, 7)) -> torch.flatten -> classifier) at toy
    widths: stride 8, so 8×8 inputs give a 1×1 map, 16×16 a 2×2 one and 56×56 exactly 7×7."""

    def __init__(self) -> None:
        super().__init__()
        blocks = [
            [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            for cin, cout in ((3, 4), (4, 8), (8, 8))
        ]
        self.features = nn.Sequential(*sum(blocks, []))
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(nn.Linear(8 * 7 * 7, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def test_torchvision_layout_identity_avgpool_is_dropped():
    torch.manual_seed(0)
    model = _MiniTorchvisionVGG().eval()
    fc = to_fully_convolutional(model, input_size=(3, 56, 56)).eval()
    assert fc.get_submodule("classifier.0").kernel_size == (7, 7)
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in fc.modules())
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(fc(x).flatten(1), model(x), rtol=1e-5, atol=1e-5)
        assert fc(torch.randn(1, 3, 112, 112)).shape == (1, 5, 8, 8)  # 14 − 7 + 1


def test_torchvision_layout_at_1x1_folds_the_replicating_avgpool():
    # At 32×32 torchvision's VGG features give 1×1, which AdaptiveAvgPool2d((7, 7)) copies 49 times; FC6 then
    # equals a 1×1 conv whose kernel is FC6's 7×7 kernel summed over space. (Here: 8×8 toy input.)
    torch.manual_seed(0)
    model = _MiniTorchvisionVGG().eval()
    fc = to_fully_convolutional(model, input_size=(3, 8, 8)).eval()
    assert fc.get_submodule("classifier.0").kernel_size == (1, 1)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(fc(x).flatten(1), model(x), rtol=1e-5, atol=1e-5)
        assert fc(torch.randn(1, 3, 24, 24)).shape == (1, 5, 3, 3)


def test_adaptive_pool_that_resizes_is_refused():
    model = _MiniTorchvisionVGG().eval()  # at 16×16: a 2×2 map stretched to 7×7
    with pytest.raises(ConversionError, match="resizes the 2×2 feature map to 7×7"):
        to_fully_convolutional(model, input_size=(3, 16, 16))


def test_alexnet_fc6_is_a_6x6_conv():
    torch.manual_seed(0)
    model = torchvision.models.alexnet(num_classes=10).eval()
    fc = to_fully_convolutional(model, input_size=(3, 224, 224)).eval()
    assert fc.get_submodule("classifier.1").kernel_size == (6, 6)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(fc(x).flatten(1), model(x), rtol=1e-5, atol=1e-5)
    assert score_map_size(fc, (3, 448, 448)) == (_arith_map_size(fc, 448),) * 2 == (8, 8)


@pytest.mark.parametrize("builder", [torchvision.models.resnet18, torchvision.models.googlenet])
def test_global_pooling_nets_raise(builder):
    kwargs = {"aux_logits": False, "init_weights": False} if builder is torchvision.models.googlenet else {}
    model = builder(num_classes=10, **kwargs).eval()
    with pytest.raises(ConversionError, match="already pools globally"):
        to_fully_convolutional(model, input_size=(3, 64, 64))


def _tiny_net() -> nn.Sequential:
    """No padding, so each score-map cell is exactly the net on one training-size window."""
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3),  # 12 -> 10
        nn.ReLU(),
        nn.MaxPool2d(2),  # 10 -> 5, stride 2
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(4 * 5 * 5, 16),
        nn.ReLU(),
        nn.BatchNorm1d(16),  # after the flatten and not element-wise: applied per position
        nn.Linear(16, 3),
    )
    attach_card(net, ModelCard(model="toy", input_size=(1, 12, 12)))
    with torch.no_grad():
        net[7].running_mean.uniform_(-1, 1)
        net[7].running_var.uniform_(0.5, 2)
    return net.eval()


def _windows(net: nn.Module, x: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """The original net on every size×size window at the given stride: (N, classes, h, w)."""
    n = (x.shape[-1] - size) // stride + 1
    rows = [
        [net(x[..., i * stride : i * stride + size, j * stride : j * stride + size]) for j in range(n)]
        for i in range(n)
    ]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


@pytest.mark.parametrize(
    "make, size, stride", [(_tiny_net, 12, 2), (lambda: create_model("lenet5").eval(), 32, 4)]
)
def test_score_map_is_the_sliding_window(make, size, stride):
    torch.manual_seed(0)
    net = make()
    fc = to_fully_convolutional(net).eval()
    assert not any(isinstance(m, nn.Linear) for m in fc.modules())
    x = torch.randn(2, 1, size + 2 * stride, size + 2 * stride)
    with torch.no_grad():
        got, want = fc(x), _windows(net, x, size, stride)
    assert got.shape[-2:] == (3, 3)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_lenet5_rbf_output_runs_per_position():
    fc = to_fully_convolutional(create_model("lenet5"))
    assert isinstance(fc.get_submodule("output"), PerPosition)
    assert fc.get_submodule("f6").kernel_size == (1, 1)  # C5 is already a conv: F6 reads a 120×1×1 map
    assert score_map_size(fc, (1, 64, 64)) == (9, 9)  # 64 -> 60 -> 30 -> 26 -> 13 -> 9


def test_dense_predict_averages_posteriors_over_positions_flips_and_scales():
    torch.manual_seed(0)
    net = _tiny_net()
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        windows = _windows(net, x, 12, 2).softmax(dim=1)  # (3, 3, 3, 3)
        flipped = _windows(net, x.flip(-1), 12, 2).softmax(dim=1)
        at12 = net(nn.functional.interpolate(x, size=12, mode="bilinear", antialias=True)).softmax(1)
    plain = dense_predict(net, x, scales=(16,), flip=False)
    torch.testing.assert_close(plain.scores, windows.mean(dim=(2, 3)))
    torch.testing.assert_close(plain.maps[0], windows)
    both = dense_predict(net, x, scales=(16,), flip=True)
    torch.testing.assert_close(both.scores, (windows.mean(dim=(2, 3)) + flipped.mean(dim=(2, 3))) / 2)
    multi = dense_predict(net, x, scales=(12, 16), flip=False)
    assert [m.shape for m in multi.maps] == [(3, 3, 1, 1), (3, 3, 3, 3)]
    torch.testing.assert_close(multi.scores, (at12 + windows.mean(dim=(2, 3))) / 2, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(multi.scores.sum(1), torch.ones(3))


def test_dense_predict_multi_crop():
    torch.manual_seed(0)
    net = _tiny_net()
    x = torch.randn(2, 1, 16, 16)
    crops = [x[..., :12, :12], x[..., :12, 4:], x[..., 4:, :12], x[..., 4:, 4:], x[..., 2:14, 2:14]]
    with torch.no_grad():
        five = torch.stack([net(c).softmax(1) for c in crops]).mean(0)
        ten = torch.stack([net(c).softmax(1) for c in crops + [c.flip(-1) for c in crops]]).mean(0)
    torch.testing.assert_close(dense_predict(net, x, scales=(16,), flip=False, crops=5).scores, five)
    torch.testing.assert_close(dense_predict(net, x, scales=(16,), flip=False, crops=10).scores, ten)
    torch.testing.assert_close(dense_predict(net, x, scales=(16,), flip=True, crops=5).scores, ten)
    centre = dense_predict(net, x, scales=(16,), flip=False, crops=1).scores
    with torch.no_grad():
        torch.testing.assert_close(centre, net(crops[4]).softmax(1))


def test_dense_predict_refuses_too_small_scales_and_uint8():
    net = _tiny_net()
    with pytest.raises(ShapeError, match="too small"):
        dense_predict(net, torch.randn(1, 1, 16, 16), scales=(8,))
    with pytest.raises(ShapeError, match="float"):
        dense_predict(net, torch.zeros(1, 1, 16, 16, dtype=torch.uint8))


def test_conversion_errors():
    no_size = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    with pytest.raises(ConversionError, match="input_size"):
        to_fully_convolutional(no_size)
    all_conv = nn.Sequential(nn.Conv2d(1, 3, 6))
    with pytest.raises(ConversionError, match="no flatten"):
        to_fully_convolutional(all_conv, input_size=(1, 6, 6))
    twice = to_fully_convolutional(no_size, input_size=(1, 6, 6))
    assert to_fully_convolutional(twice) is not twice  # already converted: a copy


def test_save_heatmap_writes_a_png(tmp_path):
    import matplotlib.image

    image = torch.rand(1, 40, 40)
    score_map = torch.rand(3, 3, 3)
    path = save_heatmap(image, score_map, class_index=2, path=tmp_path / "heat.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(path).shape[0] > 100
    with pytest.raises(ShapeError, match="class_index 3"):
        save_heatmap(image, score_map, class_index=3, path=tmp_path / "bad.png")


# --- the analyzer on the converted graph (issue 16, items 1 and 2) ---------------------------------------


def test_converted_graph_keeps_the_card_and_the_analyzer_reads_it():
    model = create_model("lenet5_modern")
    fc = to_fully_convolutional(model)
    assert fc.card == model.card and fc.card.input_size == (1, 28, 28)
    s = cnnzoo.summary(fc)  # no input size given: the card's
    assert s.input == (1, 28, 28) and s.model == "lenet5_modern"
    assert s.layers[-1].output_shape == [10, 1, 1]


def test_per_position_layers_are_counted_at_every_position_as_a_real_forward_gives():
    """LeNet-5 at 64×64, fully convolutional: the RBF output is a 10×9×9 map, 84·10 MACs at each of the
    81 positions (68,040), not one vector's 840."""
    fc = to_fully_convolutional(create_model("lenet5"))
    rbf = cnnzoo.summary(fc, (1, 64, 64)).layer("output.module")
    assert rbf.type == "RBFOutput" and rbf.output_shape == [10, 9, 9]
    assert (rbf.macs, rbf.connections, rbf.params) == (68_040, 68_040, 840)
    with torch.no_grad():
        assert tuple(fc(torch.zeros(1, 1, 64, 64)).shape[1:]) == tuple(rbf.output_shape)


@pytest.mark.parametrize("args", [["vgg16", "--format", "markdown"], ["lenet5", "--input", "1x64x64"]])
def test_cli_summary_fully_convolutional(args, capsys):
    from cnnzoo.cli import main

    assert main(["summary", *args, "--fully-convolutional"]) == 0
    out = capsys.readouterr().out
    assert f"{args[0]} (fully convolutional)" in out
    if args[0] == "lenet5":
        assert "10×9×9" in out and "68,040" in out
