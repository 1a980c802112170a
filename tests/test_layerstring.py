"""Layer strings (Cireşan et al. 2012's ``1x29x29-20C4-MP2-40C5-MP3-150N-10N``, extended): counts against the
seeds, the papers and torchvision; MACs against fvcore; errors with a caret; the round trip, with hypothesis.

Big nets are built on the meta device, so counting 138M parameters costs nothing."""

from __future__ import annotations

import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import cnnzoo
from cnnzoo.errors import CnnzooError
from cnnzoo.models.layershapes import MAX_PARAMS
from cnnzoo.models.layerstring import (
    LayerStringError,
    build_layer_string,
    is_layer_string,
    parse_layer_string,
    to_layer_string,
)

CIRESAN = "1x29x29-20C4-MP2-40C5-MP3-150N-10N"
SEED_004 = "1x28x28-32C3-MP2-64C3-MP2-128C3-MP2-64N-10N"
ALEXNET_TV = "3x224x224-64C11p2s4-MP3s2-192C5p2-MP3s2-384C3p1-256C3p1*2-MP3s2-D0.5-4096N-D0.5-4096N-1000N"
VGG16 = "3x224x224-64C3p1*2-MP2-128C3p1*2-MP2-256C3p1*3-MP2-512C3p1*3-MP2-512C3p1*3-MP2-4096N-D-4096N-D-1000N"
RESNET20 = "3x32x32-16C3p1-BN-R16*3-R32s2A-R32*2-R64s2A-R64*2-GAP-10N"
LENET5_MODERN = "1x28x28-6C5p2-MP2-16C5-MP2-120N-84N-10N"


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_build(s: str) -> nn.Module:
    with torch.device("meta"):
        return build_layer_string(s)


def test_the_seeds_counts():
    # Cireşan's MNIST net: (16+1)·20 + (20·25+1)·40 + (40·9+1)·150 + 151·10; seed 004's Keras summary per layer
    assert n_params(build_layer_string(CIRESAN)) == parse_layer_string(CIRESAN).params == 76_040
    net = build_layer_string(SEED_004)
    per_layer = [n_params(m) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert per_layer == [320, 18_496, 73_856, 8_256, 650]  # seed 004's model.summary()
    assert n_params(net) == 101_578


@pytest.mark.parametrize(
    "text, reference",
    [(ALEXNET_TV, torchvision.models.alexnet), (VGG16, torchvision.models.vgg16)],
)
def test_classic_nets_match_torchvision(text, reference):
    with torch.device("meta"):
        theirs = reference()
    ours = meta_build(text)
    assert n_params(ours) == n_params(theirs) == parse_layer_string(text).params
    # the same layers in the same order: every conv and linear has torchvision's shape
    shapes = [tuple(p.shape) for p in ours.parameters()]
    assert shapes == [tuple(p.shape) for p in theirs.parameters()]


def test_resnet20_and_lenet5_match_the_papers():
    he = cnnzoo.get_model_info("resnet20").published.params  # He et al. 2015 (0.27M), option A shortcuts
    assert n_params(meta_build(RESNET20)) == he == 269_722
    assert parse_layer_string(RESNET20).output == (10,)
    # LeNet-5 as trained today: LeCun's 32×32 C1 on 28×28 with padding 2, then 5·5·6·16+16, 400·120+120, …
    assert n_params(build_layer_string(LENET5_MODERN)) == 156 + 2_416 + 48_120 + 10_164 + 850


@pytest.mark.parametrize("text", [CIRESAN, SEED_004, "1x28x28-8C3p1s2d1g1-8C3g4-AP2-16C3d2-GMP-10N"])
def test_macs_match_fvcore(text):
    from fvcore.nn import FlopCountAnalysis

    spec = parse_layer_string(text)
    model = build_layer_string(text).eval()
    counter = FlopCountAnalysis(model, torch.zeros(1, *spec.input))
    counter.unsupported_ops_warnings(False)
    counter.uncalled_modules_warnings(False)
    convs_and_linears = sum(v for k, v in counter.by_operator().items() if k in ("conv", "linear", "addmm"))
    assert spec.macs == convs_and_linears


def test_forward_shapes_match_the_spec():
    for text in (CIRESAN, SEED_004, RESNET20, LENET5_MODERN, "3x32x32-8C3-BN-Tanh-GAP-5N-BN-Sigmoid-3N"):
        spec = parse_layer_string(text)
        out = build_layer_string(text).eval()(torch.zeros(2, *spec.input))
        assert tuple(out.shape) == (2, *spec.output)


def test_names_card_and_no_lazy_layers():
    net = build_layer_string("1x28x28-6C5-BN-MP2-16C5-Tanh-AP2-120N-D0.3-10N")
    assert list(dict(net.named_children())) == [
        "conv1",
        "bn1",
        "relu1",
        "pool1",
        "conv2",
        "tanh1",
        "pool2",
        "flatten",
        "fc1",
        "relu2",
        "drop1",
        "fc2",
    ]
    assert net.conv1.bias is None and net.conv2.bias is not None  # a BN after a conv takes the bias's place
    assert not any(isinstance(p, nn.parameter.UninitializedParameter) for p in net.parameters())
    assert net.card.model == "1x28x28-6C5-BN-MP2-16C5-Tanh-AP2-120N-D0.3-10N"
    assert net.card.input_size == (1, 28, 28)


def test_num_classes_and_reset_classifier():
    net = build_layer_string(SEED_004, num_classes=3)
    assert net.fc2.out_features == 3 and net.card.model.endswith("-64N-3N")
    net.reset_classifier(5)
    assert net(torch.zeros(1, 1, 28, 28)).shape == (1, 5) and net.card.model.endswith("-64N-5N")


@pytest.mark.parametrize(
    "text, bad",
    [
        ("1x29x29-20C4-Q3-10N", "Q3"),
        ("1x29x29-20C4-MP2-40C5-MP3-40C5-10N", "40C5-10N"),  # 3×3 maps: the second 40C5 collapses
        ("1x28x28-20C4z2-10N", "z2"),
        ("1x28x28-10N-5C3", "5C3"),
        ("1x28x28-8C3g3-10N", "8C3g3"),
        ("1x28x28-4C3-R2A-10N", "R2A"),
        ("3x224x224-16384N-16384N", "16384N"),
        ("1x28x28-MP2*999", "*999"),
        ("28x28-10N", "28x28"),
    ],
)
def test_errors_point_at_the_token(text, bad):
    with pytest.raises(LayerStringError) as info:
        parse_layer_string(text)
    err = info.value
    assert isinstance(err, CnnzooError)
    line, caret = str(err).split("\n")
    assert line.startswith(text + "  <- ")
    start = text.index(bad)
    assert caret == " " * start + "^" * len(bad.split("-")[0])
    assert (err.position, err.length) == (start, len(bad.split("-")[0]))


def test_caps_are_named():
    with pytest.raises(LayerStringError, match="MAX_PARAMS") as info:
        parse_layer_string("3x224x224-16384N-16384N")
    assert f"{MAX_PARAMS:,}" in str(info.value)
    with pytest.raises(LayerStringError, match="MAX_STRING_LENGTH"):
        parse_layer_string("1x28x28" + "-BN" * 2000)
    with pytest.raises(LayerStringError, match="MAX_LAYERS"):
        parse_layer_string("1x28x28" + "-BN*64" * 6)
    with pytest.raises(LayerStringError, match="MAX_FEATURE_ELEMENTS|MAX_MACS"):
        parse_layer_string("3x1024x1024-4096C3p1-10N")


def test_is_layer_string():
    assert is_layer_string(CIRESAN) and is_layer_string("1x28x28") and is_layer_string("1x28x28-Q")
    assert not any(map(is_layer_string, ["lenet5", "vgg16", "net.py:Net", "torchvision:resnet18", "", None]))


@pytest.mark.parametrize(
    "name, text",
    [
        ("keras_three_conv", SEED_004),  # seed 004, as the zoo builds it (its own builder, not a string)
        ("lenet5_modern", LENET5_MODERN),
        ("keras_mnist_cnn", "1x28x28-32C4-MP3-64C4-MP3-64N-10N"),  # seed 003
        ("lenet_d2l", "1x28x28-6C5-Sigmoid-MP2-16C5-Sigmoid-MP2-120N-Sigmoid-84N-Sigmoid-10N"),
    ],
)
def test_zoo_nets_read_back_as_their_strings(name, text):
    zoo = cnnzoo.create_model(name)
    assert to_layer_string(zoo) == text
    assert [p.shape for p in build_layer_string(text).parameters()] == [p.shape for p in zoo.parameters()]


def test_a_plain_sequential_reads_back():
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Flatten(),
        nn.Linear(8 * 14 * 14, 10),
    )
    assert to_layer_string(model, input_size=(1, 28, 28)) == "1x28x28-8C3p1-MP2-10N"
    with pytest.raises(LayerStringError, match="LSTM") as info:
        to_layer_string(nn.Sequential(nn.LSTM(3, 3)), input_size=(1, 28, 28))
    assert "\n" not in str(info.value)  # no text to point a caret into


# Hypothesis: random nets of every token kind. string -> spec -> module -> string gives the canonical string,
# which reads back to the same layers and builds the same modules.
_conv = st.builds(
    lambda k, s, p, st_, d, g: (
        f"{4 * g}C{s}"
        + (f"p{p}" if p else "")
        + (f"s{st_}" if st_ > 1 else "")
        + (f"d{d}" if d > 1 else "")
        + (f"g{g}" if g > 1 else "")
    ),
    st.just(0),
    st.integers(1, 3),
    st.integers(0, 1),
    st.integers(1, 2),
    st.integers(1, 2),
    st.sampled_from([1, 2]),
)
_tok = st.one_of(
    _conv,
    st.builds(
        lambda op, k, s: f"{op}{k}" + (f"s{s}" if s != k else ""),
        st.sampled_from(["MP", "AP"]),
        st.integers(1, 2),
        st.integers(1, 2),
    ),
    st.sampled_from(
        ["BN", "D0.25", "D", "ReLU", "Tanh", "Sigmoid", "GELU", "SiLU", "ELU", "LReLU", "ReLU6", "Id"]
    ),
    st.builds(
        lambda c, s, a: f"R{c}" + (f"s{s}" if s > 1 else "") + a,
        st.sampled_from([8, 16]),
        st.integers(1, 2),
        st.sampled_from(["", "A"]),
    ),
    st.builds(lambda t, n: f"{t}*{n}", st.sampled_from(["8C3p1", "BN", "ReLU"]), st.integers(2, 3)),
)
_head = st.lists(
    st.one_of(st.builds(lambda n: f"{n}N", st.integers(1, 12)), st.sampled_from(["BN", "D", "Tanh", "ReLU"])),
    max_size=4,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    c=st.sampled_from([1, 2, 4]),
    side=st.integers(8, 20),
    body=st.lists(_tok, min_size=1, max_size=8),
    gpool=st.sampled_from(["", "GAP", "GMP"]),
    head=_head,
)
def test_round_trip(c, side, body, gpool, head):
    text = "-".join([f"{c}x{side}x{side}", *body] + ([gpool] if gpool else []) + head)
    try:
        spec = parse_layer_string(text)
    except LayerStringError:
        return  # shapes that collapse or groups that do not divide: refused, not built
    canonical = to_layer_string(spec)
    model = build_layer_string(text)
    assert to_layer_string(model) == canonical  # read from the module's layers, not from the text
    again = parse_layer_string(canonical)
    assert again.layers == spec.layers and again.params == spec.params == n_params(model)
    rebuilt = build_layer_string(canonical)
    assert [(n, repr(m)) for n, m in rebuilt.named_modules()] == [
        (n, repr(m)) for n, m in model.named_modules()
    ]
