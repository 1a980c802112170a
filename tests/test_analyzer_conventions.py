"""Each counting convention equals the installed tool's own totals (MACs and parameters), run here."""

import contextlib
import copy
import io
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import cnnzoo


class TutorialLeNet(nn.Module):
    """The PyTorch tutorial's LeNet ("Neural Networks"): functional ReLU and max pooling."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


NETS = {
    "lenet": (TutorialLeNet, (1, 32, 32)),
    "resnet50": (torchvision.models.resnet50, (3, 224, 224)),
    "vgg16": (torchvision.models.vgg16, (3, 224, 224)),
    # an auxiliary head not run in eval mode; Inception modules concatenating branches
    "googlenet": (lambda: torchvision.models.googlenet(init_weights=False), (3, 224, 224)),
    # squeeze-excitation (x * scale), SiLU, hardswish
    "mobilenet_v3_small": (torchvision.models.mobilenet_v3_small, (3, 224, 224)),
    # layer norm, attention written with x @ y, shifted windows (roll, pad)
    "swin_t": (torchvision.models.swin_t, (3, 224, 224)),
    # the zoo's LeNet-5: sparse C3, subsampling and RBF layers none of the tools has a rule for
    "lenet5": (lambda: cnnzoo.create_model("lenet5"), (1, 32, 32)),
}


def _tools(model: nn.Module, size) -> dict[str, tuple[int, int]]:
    """(MACs, params) as each tool reports them, on a real CPU forward of the model in eval mode."""
    import fvcore.nn
    import ptflops
    import thop
    import torchinfo

    x = torch.rand(1, *size)
    info = torchinfo.summary(model, input_data=x, verbose=0)
    fv = fvcore.nn.FlopCountAnalysis(model, x)
    fv.unsupported_ops_warnings(False)
    fv.uncalled_modules_warnings(False)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pf = ptflops.get_model_complexity_info(
            copy.deepcopy(model), size, as_strings=False, print_per_layer_stat=False
        )
        th = thop.profile(copy.deepcopy(model), (x,), verbose=False)
    return {
        "torchinfo": (info.total_mult_adds, info.total_params),
        "fvcore": (fv.total(), fvcore.nn.parameter_count(model)[""]),
        "ptflops": (int(pf[0]), int(pf[1])),
        "thop": (int(th[0]), int(th[1])),
    }


SLOW = {"resnet50", "vgg16", "googlenet", "swin_t"}  # a real forward through each tool: seconds each


@pytest.mark.parametrize(
    "net", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(NETS)]
)
def test_each_convention_equals_the_tool(net):
    build, size = NETS[net]
    torch.manual_seed(0)
    model = build().eval()
    tools = _tools(model, size)
    for name, (macs, params) in tools.items():
        s = cnnzoo.summary(model, size, convention=name)
        assert (s.convention["macs"], s.convention["params"]) == (macs, params), name
        assert s.to_dict()["convention"]["name"] == name


def test_paper_counts_convolutions_and_fully_connected_layers_only():
    # torchvision's published ResNet-50 operation count is conv + FC multiply-adds: 4.089 G
    meta = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["_ops"]
    s = cnnzoo.summary(torchvision.models.resnet50(), (3, 224, 224), convention="paper")
    assert round(s.convention["macs"] / 1e9, 3) == meta
    assert set(s.convention["by_kind"]) == {"convolution", "fully connected"}


def test_default_summary_has_no_convention_and_a_bad_one_is_refused():
    s = cnnzoo.summary("lenet5")
    assert s.to_dict()["convention"] is None
    with pytest.raises(cnnzoo.errors.CnnzooError, match="unknown convention 'flops'"):
        cnnzoo.summary("lenet5", convention="flops")


def test_a_module_without_a_reproduced_rule_is_refused_by_name():
    model = nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 4))
    with pytest.raises(cnnzoo.errors.CnnzooError, match="thop's count for LSTM"):
        from cnnzoo.analysis.conventions import count

        count(model, [torch.empty(1, 3, 4)], "thop")


@pytest.mark.slow
def test_web_api_and_cli_give_the_tools_totals():
    """/api/summary?convention= and `cnnzoo explain --convention` on the zoo's VGG-16 equal thop and fvcore."""
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from cnnzoo.card import ModelCard
    from cnnzoo.models import create_model
    from cnnzoo.web import create_app
    from cnnzoo.web.session import Session

    model = create_model("vgg16").eval()
    tools = _tools(model, (3, 224, 224))
    meta = {
        "model": "vgg16",
        "input_size": [3, 224, 224],
        "dataset": "imagenet",
        "classes": ["a"] * 1000,
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
    }
    client = TestClient(create_app(Session(model, ModelCard(**meta), "test")))
    got = client.get("/api/summary/vgg16?input=3x224x224&convention=thop").json()["convention"]
    assert (got["macs"], got["params"]) == tools["thop"]
    bad = client.get("/api/summary/vgg16?convention=flops")
    assert bad.status_code == 422 and "unknown convention 'flops'" in bad.text
    out = subprocess.run(
        [sys.executable, "-m", "cnnzoo", "explain", "vgg16", "--convention", "fvcore"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"fvcore: {tools['fvcore'][0]:,} MACs" in out


def test_attention_hidden_inside_one_function_is_refused_not_undercounted():
    # nn.MultiheadAttention runs its projections inside F.multi_head_attention_forward, whose inner calls
    # fvcore's trace sees and a function mode does not
    with pytest.raises(cnnzoo.errors.CnnzooError, match="fvcore's count for multi_head_attention_forward"):
        cnnzoo.summary(torchvision.models.vit_b_16(), (3, 224, 224), convention="fvcore")
