"""The analyzer against the papers' numbers (REFERENCE.md), torchvision's published op counts, and
brute-force receptive fields measured with gradients on real tensors."""

import json
import re
import subprocess
import sys

import pytest
import torch
import torchvision
from torch import nn

import cnnzoo
from cnnzoo.analysis.summary import summary, trace
from cnnzoo.errors import ShapeError

# REFERENCE.md, LeNet-5 table: (layer, trainable params, connections, output shape)
LENET5_TABLE = [
    ("c1", 156, 122_304, [6, 28, 28]),
    ("s2", 12, 5_880, [6, 14, 14]),
    ("c3", 1_516, 151_600, [16, 10, 10]),
    ("s4", 32, 2_000, [16, 5, 5]),
    ("c5", 48_120, 48_120, [120, 1, 1]),
    ("f6", 10_164, 10_164, [84]),
    ("output", 0, 840, [10]),
]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnnzoo", *args], capture_output=True, text=True, timeout=120
    )


def test_lenet5_json_matches_the_paper_table():
    proc = _cli("summary", "lenet5", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    weighted = [row for row in data["layers"] if row["params"] > 0]
    got = [(r["name"], r["trainable_params"], r["connections"], r["output_shape"]) for r in weighted]
    assert got == LENET5_TABLE
    assert data["total"]["trainable_params"] == 60_000
    assert data["total"]["connections"] == 340_908
    assert data["total"]["params"] == 60_000 + 840  # the RBF's fixed ±1 bitmaps are parameters too
    assert data["input"] == [1, 32, 32]


def test_lenet5_model_parameters():
    model = cnnzoo.create_model("lenet5")
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 60_000


def test_json_schema():
    data = summary("lenet5").to_dict()
    assert set(data) >= {"model", "input", "layers", "blocks", "total"}
    keys = {
        "name",
        "type",
        "output_shape",
        "params",
        "trainable_params",
        "macs",
        "flops",
        "connections",
        "receptive_field",
        "activation_bytes",
    }
    for row in data["layers"]:
        assert keys <= set(row)
        assert set(row["receptive_field"]) == {"size", "jump", "start"}
        assert row["activation_bytes"] == 4 * torch.Size(row["output_shape"]).numel()
    assert set(data["total"]) >= {
        "params",
        "trainable_params",
        "macs",
        "flops",
        "connections",
        "activation_bytes",
    }
    json.dumps(data)  # serialisable as is


@pytest.mark.parametrize(
    "name, weights",
    [
        ("alexnet", "AlexNet_Weights"),
        ("vgg11", "VGG11_Weights"),
        ("vgg16", "VGG16_Weights"),
        ("vgg19_bn", "VGG19_BN_Weights"),
        ("resnet18", "ResNet18_Weights"),
        ("resnet50", "ResNet50_Weights"),
        ("resnet152", "ResNet152_Weights"),
    ],
)
def test_torchvision_models_match_published_ops(name, weights):
    # torchvision records each architecture's parameter count and GMACs ("_ops") in its weights' metadata.
    meta = getattr(torchvision.models, weights).IMAGENET1K_V1.meta
    with torch.device("meta"):
        model = getattr(torchvision.models, name)()
    s = summary(model, (3, 224, 224))
    assert s.total["params"] == meta["num_params"]
    assert s.total["macs"] / 1e9 == pytest.approx(meta["_ops"], abs=0.0005)


def test_vgg16_receptive_fields():
    # REFERENCE.md: conv5_3 sees 196 pixels, pool5 212, effective stride 32.
    s = summary(torchvision.models.vgg16(), (3, 224, 224))
    conv5_3, pool5 = s.layer("features.28"), s.layer("features.30")
    assert conv5_3.receptive_field.to_dict()["size"] == 196
    assert pool5.receptive_field.to_dict() == {"size": 212, "jump": 32, "start": 16}
    assert [b.output_shape for b in s.blocks] == [
        [64, 112, 112],
        [128, 56, 56],
        [256, 28, 28],
        [512, 14, 14],
        [512, 7, 7],
    ]


def _measured_rf(model: nn.Module, input_size, layer: str) -> int:
    """Receptive field measured on real tensors: which input pixels move the centre unit's gradient."""
    # A max-pool passes gradient to one winner per window; an average pool of the same geometry has the same
    # receptive field and passes it to every input, so swap them for the measurement.
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.MaxPool2d):
            parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            setattr(
                parent, name.rpartition(".")[2], nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode)
            )
    captured = {}
    model.get_submodule(layer).register_forward_hook(lambda m, a, out: captured.setdefault("out", out))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.01)  # positive weights: no accidental cancellation
    x = torch.zeros(1, *input_size, requires_grad=True)
    model.eval()
    model(x)
    out = captured["out"]
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = x.grad[0].abs().sum(0).sum(1).nonzero()
    return int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize(
    "build, input_size, layer",
    [
        (
            lambda: nn.Sequential(
                nn.Conv2d(1, 2, 5),
                nn.MaxPool2d(2),
                nn.Conv2d(2, 2, 3, dilation=2),
                nn.AvgPool2d(3, 2),
                nn.Conv2d(2, 2, 3),
            ),
            (1, 64, 64),
            "4",
        ),
        (lambda: torchvision.models.vgg11(), (3, 224, 224), "features.15"),
        (lambda: torchvision.models.alexnet(), (3, 224, 224), "features.10"),
    ],
)
def test_receptive_field_matches_gradient_measurement(build, input_size, layer):
    model = build()
    predicted = summary(model, input_size).layer(layer).receptive_field.to_dict()["size"]
    measured = _measured_rf(model, input_size, layer)
    # padding can clip the field at the border; the centre unit of these maps sees the whole field
    assert predicted == measured


def test_residual_paths_take_the_larger_field_and_adds_are_counted():
    s = summary(torchvision.models.resnet18(), (3, 224, 224))
    block = s.blocks[0]
    assert block.name == "layer1.0" and block.type == "BasicBlock"
    add = s.layer("layer1.0.add")
    assert add.flops == 64 * 56 * 56  # one FLOP per element, stated rule
    # main path: stem (11, jump 4) + two 3×3 convs at jump 4 -> 27; the identity path is smaller
    assert add.receptive_field.to_dict()["size"] == 27
    # relu is one module called twice in BasicBlock: two rows, no double-counted parameters
    assert s.layer("layer1.0.relu#2").params == 0
    assert len(s.blocks) == 8


def test_grouped_conv_and_shared_modules():
    shared = nn.Conv2d(8, 8, 3, padding=1, groups=4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    s = summary(model, (8, 10, 10))
    params = sum(p.numel() for p in model.parameters())
    assert s.total["params"] == params == 8 * 2 * 9 + 8
    assert s.total["macs"] == 2 * (8 * 10 * 10) * (2 * 9)  # two calls of a groups=4 conv


def test_meta_analysis_cost_does_not_grow_with_input():
    import time

    model = torchvision.models.vgg16()
    times = []
    for side in (224, 1024):
        start = time.perf_counter()
        s = summary(model, (3, side, side))
        times.append(time.perf_counter() - start)
    assert s.total["macs"] > 20 * 15.47e9  # the work counted grows ~21×...
    assert times[1] < 5 * times[0] + 0.05  # ...the time to count it does not (no real arithmetic runs)


def test_analyzing_a_real_model_leaves_it_untouched():
    model = cnnzoo.create_model("lenet5")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    classes = {name: type(m) for name, m in model.named_modules()}
    summary(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).device.type == "cpu"
    # the analyzer instruments its own copy: the caller's modules keep their classes and attributes
    assert {name: type(m) for name, m in model.named_modules()} == classes
    assert not any("forward" in vars(m) or "_cnnzoo_trace" in vars(m) for m in model.modules())


def test_analysis_leaves_no_garbage_cycles():
    # The instrumented copy must be freed by reference counting when the analysis returns. A cycle
    # (module -> its wrapper -> module) would leave ~13k objects of ResNet-152 to the next full garbage
    # collection: ~250 ms over torch's live objects, landing in whatever the caller runs next.
    import gc

    model = torchvision.models.resnet18()
    gc.collect()
    gc.disable()
    try:
        summary(model, (3, 64, 64))
        summary("resnet20")
        assert gc.collect() == 0
    finally:
        gc.enable()


class _Block(nn.Module):
    cnnzoo_block = True

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv, self.bn = conv, nn.BatchNorm2d(conv.out_channels)

    def forward(self, x):
        return x + self.bn(self.conv(x))


def test_block_parameters_count_shared_modules():
    stem = nn.Conv2d(4, 4, 3, padding=1)
    model = nn.Sequential(stem, _Block(stem), _Block(nn.Conv2d(4, 4, 3, padding=1, bias=False)))
    blocks = {b.name: b for b in summary(model, (4, 8, 8)).blocks}
    # block 1 holds the stem conv, also used before it: its parameters count in the block too
    assert blocks["1"].params == sum(p.numel() for p in model[1].parameters()) == 148 + 8
    assert blocks["2"].params == sum(p.numel() for p in model[2].parameters()) == 144 + 8
    assert summary(model, (4, 8, 8)).total["params"] == sum(p.numel() for p in model.parameters())


class _Registered(nn.Module):
    """A base class that registers every subclass: the analyzer must not create one behind its back."""

    registry: list[type] = []

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _Registered.registry.append(cls)


class _RegisteredConv(_Registered):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, stride=2)

    def forward(self, x):
        return self.conv(x)


class _RegisteredTail(_Registered):
    def forward(self, x):
        return x.flatten(1)


class _HalfNorm(nn.BatchNorm2d):
    """A shape-keeping class whose own forward changes the shape: it must run for real."""

    def forward(self, x):
        return super().forward(x)[:, : x.shape[1] // 2]


def test_unusual_modules_are_traced_like_a_real_forward():
    # subclasses that must not be created (a registering __init_subclass__), a shape-keeping class with
    # its own forward, and hooks that change a layer's input and output: all as a real forward pass sees them
    model = nn.Sequential(
        _RegisteredConv(), _HalfNorm(5), nn.MaxPool2d(2), nn.Conv2d(2, 6, 1), _RegisteredTail()
    )
    model[2].register_forward_pre_hook(lambda m, args: (args[0][:, :, 1:, 1:],))
    model[3].register_forward_hook(lambda m, args, out: out[:, :4])
    registered = list(_Registered.registry)
    s = summary(model, (3, 17, 17))
    real = {n: list(shape[1:]) for n, _, shape in trace(model, (3, 17, 17))}
    assert real["2"] == [2, 3, 3] and real["3"] == [4, 3, 3] and real["4"] == [36]
    # a row is what the layer computes (the conv's 6 maps, and their MACs); the next layer gets what the
    # hook made of it (flatten: 4 maps)
    real["3"] = [6, 3, 3]
    assert {r.name: r.output_shape for r in s.layers} == real
    assert s.layer("3").macs == 6 * 3 * 3 * 2
    assert _Registered.registry == registered
    assert len(model[2]._forward_pre_hooks) == 1 and len(model[3]._forward_hooks) == 1


def test_too_small_input_names_layer_and_minimum():
    with pytest.raises(ShapeError, match=r"collapses at layer 'c5'.*smallest input that works is 1×32×32"):
        summary("lenet5", (1, 16, 16))
    with pytest.raises(ShapeError, match=r"features.12.*3×63×63"):
        summary(torchvision.models.alexnet(), (3, 32, 32))


def test_collapse_shows_the_output_size_formula_with_its_numbers():
    # torchvision's AlexNet at 3×32×32: features.12 (MaxPool 3×3 s2) gets a 1×1 map, and PyTorch refuses it
    net = torchvision.models.alexnet().features[:12]
    assert tuple(net(torch.zeros(1, 3, 32, 32)).shape[2:]) == (1, 1)
    with pytest.raises(RuntimeError):
        torch.nn.MaxPool2d(3, 2)(torch.zeros(1, 256, 1, 1))
    with pytest.raises(ShapeError, match=re.escape("⌊(1 + 2·0 − 1·(3 − 1) − 1)/2⌋ + 1 = 0")):
        summary(torchvision.models.alexnet(), (3, 32, 32))


def test_wrong_channels_and_head_size():
    with pytest.raises(ShapeError, match=r"'c1'.*expects 1 input channel\(s\) but got 3"):
        summary("lenet5", (3, 32, 32))
    with pytest.raises(ShapeError, match=r"'f6'.*expects 120 input features"):
        summary("lenet5", (1, 64, 64))


@pytest.mark.parametrize(
    "args, message",
    [
        (["summary", "lenet5", "--input", "1x16x16"], "smallest input that works is 1×32×32"),
        (["summary", "lenet5", "--input", "3x32x32"], "expects 1 input channel"),
        (["summary", "lenet5", "--input", "abc"], "not of the form CxHxW"),
        (["summary", "lenet5", "--input", "0x32x32"], "three positive integers"),
        (["summary", "lenet", "--input", "1x32x32"], "did you mean 'lenet5'"),
        (["summary", "lenet5", "--format", "xml"], "invalid choice"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args, message):
    proc = _cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_trace_walks_real_tensors():
    shapes = trace("lenet5")
    assert ("c3", "SparseConv2d", (1, 16, 10, 10)) in shapes
    assert shapes[-1] == ("output", "RBFOutput", (1, 10))


@pytest.mark.slow
def test_markdown_and_csv_formats():
    for fmt, needle in (
        ("markdown", "| c3 | SparseConv2d |"),
        ("csv", "c3,SparseConv2d,5×5,16x10x10,1516,1516"),
    ):
        proc = _cli("summary", "lenet5", "--format", fmt)
        assert proc.returncode == 0 and needle in proc.stdout, proc.stdout[:500]


@pytest.mark.parametrize(
    "name, input_size",
    [
        ("lenet5", None),
        ("alexnet_paper", None),
        ("vgg11_bn", (3, 64, 80)),
        ("resnet18", (3, 97, 97)),
        ("resnet20", None),
        ("inception_bottleneck_5x5", None),
        ("keras_three_conv", None),
    ],
)
def test_analyzer_shapes_equal_a_real_forward(name, input_size):
    """The analyzer computes conv/pool output shapes by arithmetic instead of running meta kernels; every
    leaf's shape must still be what a real forward pass on real tensors produces (odd sizes included)."""
    torch.manual_seed(0)
    model = cnnzoo.create_model(name)
    s = cnnzoo.summary(model, input_size)
    real = {n: list(shape[1:]) for n, _, shape in trace(model, input_size)}
    ours = {r.name: r.output_shape for r in s.layers if r.name in real}
    assert len(ours) >= len(real) - 1 and ours  # every real leaf (a reused one is counted once) has a row
    assert ours == {n: real[n] for n in ours}


def test_pools_and_heads_by_rule_equal_a_real_forward():
    """Adaptive pools (a None in output_size keeps the input's size), Linear on 2-D and 3-D inputs, 'same'
    padding and ceil_mode: shapes the analyzer derives without running the layers, against real tensors."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding="same"),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.AdaptiveAvgPool2d((None, 5)),
        nn.AdaptiveMaxPool2d(4),
        nn.Flatten(2),
        nn.Linear(16, 7),
        nn.Flatten(),
        nn.Dropout(),
        nn.Linear(56, 3),
    )
    s = summary(model, (3, 37, 29))
    real = {n: list(shape[1:]) for n, _, shape in trace(model, (3, 37, 29))}
    assert {r.name: r.output_shape for r in s.layers} == real
    assert s.total["macs"] == 8 * 37 * 29 * 27 + 8 * 16 * 7 + 56 * 3


class _WeightOutsideItsLayer(nn.Module):
    """A container whose own forward uses a child's weight directly (weight tying, custom convs)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = (
            self.conv(x)
            + nn.functional.conv2d(x, self.conv.weight, padding=1)
            + self.conv.bias.view(1, -1, 1, 1)
        )
        return self.head(x.mean((2, 3)))


def test_a_weight_used_outside_its_layer_is_still_analysed():
    # The fast copy keeps rule-costed layers' original tensors (no meta copy); using one outside its layer
    # fails on mixed devices, and the analyzer must then trace a full meta copy instead, invisibly.
    model = _WeightOutsideItsLayer()
    s = summary(model, (3, 8, 8))
    assert s.total["params"] == sum(p.numel() for p in model.parameters()) == 4 * 27 + 4 + 10
    assert s.layer("conv").output_shape == [4, 8, 8] and s.layer("head").output_shape == [2]
    assert next(model.parameters()).device.type == "cpu" and "forward" not in vars(model.conv)


def test_the_garbage_collector_is_left_as_found():
    import gc

    summary("lenet5")
    assert gc.isenabled()
    with pytest.raises(ShapeError):
        summary("lenet5", (1, 8, 8))
    assert gc.isenabled()
    gc.disable()
    try:
        summary("lenet5")
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()
