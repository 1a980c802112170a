"""One model argument everywhere: layer strings, the user's own file, torchvision:NAME; run directories that
rebuild them (eval, predict, export checked in onnxruntime, serve); load_checkpoint(path, model=...)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from fastapi.testclient import TestClient
from torch import nn

import cnnzoo
from cnnzoo import cli
from cnnzoo.checkpoint import load_checkpoint
from cnnzoo.errors import CnnzooError
from cnnzoo.models.source import check_model_arg, model_source, resolve_model

SEED_004 = "1x28x28-32C3-MP2-64C3-MP2-128C3-MP2-64N-10N"
FASHION = Path("/usr/share/datasets/fashion-mnist")

# The PyTorch tutorial's LeNet ("Neural Networks", pytorch.org/tutorials), for 28×28 MNIST: 16·4·4 features
TUTORIAL_NET = textwrap.dedent(
    """
    import torch.nn as nn
    import torch.nn.functional as F


    class Net(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 4 * 4, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, num_classes)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = x.flatten(1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


    def small(width=8):
        return nn.Sequential(nn.Conv2d(1, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(width, 10))
    """
)


@pytest.fixture
def netfile(tmp_path) -> Path:
    path = tmp_path / "mynet.py"
    path.write_text(TUTORIAL_NET)
    return path


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_kinds():
    assert [
        model_source(a).kind for a in ("lenet5", SEED_004, "a/b.py:Net", "torchvision:vgg16", "timm:x")
    ] == [
        "zoo",
        "string",
        "file",
        "torchvision",
        "timm",
    ]
    for arg in ("a/b.py:Net", "torchvision:vgg16", "timm:resnet18"):  # the web app: no code but cnnzoo's
        with pytest.raises(CnnzooError, match="only zoo names and layer strings"):
            check_model_arg(arg, allow_code=False)


def test_summary_of_a_file_and_of_torchvision(netfile, capsys):
    assert cli.main(["summary", f"{netfile}:Net", "--input", "1x28x28"]) == 0
    tutorial = 156 + 2_416 + 30_840 + 10_164 + 850  # the tutorial's per-layer counts at 16·4·4 features
    assert f"total: {tutorial:,} params" in capsys.readouterr().out
    assert cli.main(["summary", "torchvision:resnet18"]) == 0
    published = torchvision.models.ResNet18_Weights.DEFAULT.meta["num_params"]
    assert published == 11_689_512 and f"total: {published:,} params" in capsys.readouterr().out
    model = resolve_model(f"{netfile}:small", model_args={"width": 4})
    assert model[0].out_channels == 4 and model.model_source["args"] == {"width": 4}


def test_a_string_with_an_unknown_token_exits_2_with_a_caret(capsys):
    assert cli.main(["summary", "1x29x29-20C4-MQ2-10N"]) == 2
    line, caret = capsys.readouterr().err.rstrip("\n").split("\n")
    assert caret.index("^") == line.index("MQ2") and caret.strip() == "^^^"


def _train(model: str, out: Path, *extra: str) -> Path:
    args = ["train", model, "--epochs", "1", "--limit", "500", "--out", str(out), "--quiet", "--threads", "1"]
    assert cli.main([*args, *extra]) == 0
    return out


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not at /usr/share/datasets")
def test_string_and_file_runs_work_everywhere(netfile, tmp_path, capsys):
    import onnxruntime

    from cnnzoo.web import create_app, load_session

    for model, name in ((SEED_004, SEED_004), (f"{netfile}:Net", f"{netfile.resolve()}:Net")):
        run = _train(model, tmp_path / f"run{len(name)}")
        assert json.loads((run / "checkpoint.json").read_text())["model"] == name
        assert cli.main(["eval", str(run), "--limit", "200"]) == 0
        assert cli.main(["export", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
        rebuilt, meta = load_checkpoint(run)
        x = torch.rand(2, *meta.input_size)
        session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
        ours = (
            rebuilt(x) if not meta.test_flip else (rebuilt(x) + rebuilt(x.flip(-1))) / 2
        )  # the exported flip
        theirs = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert np.abs(ours.detach().numpy() - theirs).max() < 1e-4
        info = TestClient(create_app(load_session(run))).get("/api/info").json()
        assert name in json.dumps(info)
    resume = [
        "train",
        "--out",
        str(run),
        "--resume",
        "--epochs",
        "2",
        "--limit",
        "500",
        "--quiet",
        "--threads",
        "1",
    ]
    assert cli.main(resume) == 0  # the file's run goes on from its checkpoint.json alone
    assert json.loads((run / "checkpoint.json").read_text())["epoch"] == 2
    capsys.readouterr()
    netfile.write_text(TUTORIAL_NET + "\n# changed\n")
    assert cli.main(["eval", str(tmp_path / f"run{len(name)}"), "--limit", "10"]) == 2
    err = capsys.readouterr().err
    assert "changed since this model was saved" in err and len(err.strip().splitlines()) == 1
    netfile.unlink()
    with pytest.raises(CnnzooError, match="no such file"):
        load_checkpoint(tmp_path / f"run{len(name)}")


def test_a_sequential_trained_by_fit_loads_with_model(tmp_path):
    def net():
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))

    images = torch.randint(0, 256, (60, 1, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 3, (60,))
    trained = net()
    cnnzoo.fit(trained, (images, labels), epochs=1, out=str(tmp_path / "run"), progress="quiet", threads=1)
    with pytest.raises(CnnzooError):
        load_checkpoint(tmp_path / "run")  # "Sequential" is no model cnnzoo can rebuild by itself
    model, meta = load_checkpoint(tmp_path / "run", model=net())
    for a, b in zip(model.state_dict().values(), trained.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert meta.input_size == (1, 8, 8)
