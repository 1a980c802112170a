"""Weights as torchvision and timm users write them, the user's own versions, and fine-tuned heads.

The state dicts are torchvision's own models (random init), saved with torch.save, as a user would."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import torchvision
from PIL import Image
from torchvision.models import ResNet18_Weights

import cnnzoo
from cnnzoo import weights
from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError

RESNET18 = "resnet18-f37072fd.pth"  # torchvision's file name for ResNet18_Weights.IMAGENET1K_V1 (DEFAULT)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNZOO_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CNNZOO_OFFLINE", "1")
    return tmp_path


@pytest.fixture(scope="module")
def tv_resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18()


def _image(path):
    Image.new("RGB", (64, 48), (120, 30, 200)).save(path)
    return str(path)


def test_enum_offline_is_one_line_and_a_hub_file_loads(offline, tv_resnet18, capsys):
    with pytest.raises(CnnzooError, match="not in the weights store and downloads are off") as err:
        cnnzoo.create_model("resnet18", weights=ResNet18_Weights.DEFAULT)
    assert "\n" not in str(err.value) and "cnnzoo weights import resnet18:v1" in str(err.value)
    assert (
        main(
            [
                "predict",
                "--model",
                "resnet18",
                "--weights",
                "ResNet18_Weights.DEFAULT",
                _image(offline / "a.png"),
            ]
        )
        == 2
    )
    assert "Traceback" not in capsys.readouterr().err
    # torchvision's download in torch.hub's cache layout: TORCH_HOME/hub/checkpoints/<file name>
    hub = offline / "torch" / "hub" / "checkpoints" / RESNET18
    hub.parent.mkdir(parents=True)
    torch.save(tv_resnet18.state_dict(), hub)
    entry = weights.lookup("resnet18")  # the seam: this file stands for the publisher's
    with weights.override(
        entry.__class__(
            **{**entry.__dict__, "sha256_prefix": hashlib.sha256(hub.read_bytes()).hexdigest()[:8]}
        )
    ):
        for spelling in (
            ResNet18_Weights.DEFAULT,
            ResNet18_Weights.IMAGENET1K_V1,
            "ResNet18_Weights.DEFAULT",
            "IMAGENET1K_V1",
        ):
            model = cnnzoo.create_model("resnet18", weights=spelling)
            assert all(
                torch.equal(a, b)
                for a, b in zip(model.state_dict().values(), tv_resnet18.state_dict().values(), strict=True)
            )
        model = cnnzoo.create_model("resnet18", pretrained=True)
        assert torch.equal(model.fc.weight, tv_resnet18.fc.weight) and model.card.pretrained["verified"]
    with pytest.raises(CnnzooError, match="are not resnet18's weights"):
        cnnzoo.create_model("resnet18", weights=torchvision.models.ResNet50_Weights.DEFAULT)


def test_users_own_version_is_listed_as_theirs(offline, tv_resnet18, capsys):
    f = offline / "finetuned.pth"
    torch.save(tv_resnet18.state_dict(), f)
    assert main(["weights", "import", "resnet18:mine", str(f)]) == 0
    assert "your own version" in capsys.readouterr().out
    assert main(["weights", "list"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("resnet18 ")]
    mine = [r for r in rows if " mine " in r]
    assert len(mine) == 1 and "yours" in mine[0] and "69.758" not in mine[0] and "torchvision" not in mine[0]
    assert all(
        "unverified" not in r and "yes" not in r for r in rows if " mine " not in r
    )  # nothing else stored
    assert main(["weights", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["weights"]
    theirs = [d for d in listed if d["version"] == "mine"]
    assert theirs and theirs[0]["publisher"] == "you" and not theirs[0]["published_metrics"]
    model = cnnzoo.create_model("resnet18", weights="mine")
    assert torch.equal(model.fc.weight, tv_resnet18.fc.weight) and not model.card.pretrained["verified"]


def test_an_unverified_copy_shows_no_publisher_figures_and_predict_warns(offline, tv_resnet18, capsys):
    f = offline / "random.pth"
    torch.save(tv_resnet18.state_dict(), f)
    assert main(["weights", "import", "resnet18:v1", str(f)]) == 0
    capsys.readouterr()
    assert main(["weights", "list"]) == 0
    row = next(
        r for r in capsys.readouterr().out.splitlines() if r.startswith("resnet18 ") and "imagenet:v1" in r
    )
    assert "unverified" in row and "69.758" not in row
    assert (
        main(["predict", "--model", "resnet18", "--weights", "imagenet:v1", _image(offline / "a.png")]) == 0
    )
    assert "unverified" in capsys.readouterr().err


def test_a_five_class_state_dict_loads_with_num_classes(offline, capsys):
    torch.manual_seed(1)
    tuned = torchvision.models.resnet18(num_classes=5)
    f = offline / "tuned.pth"
    torch.save(tuned.state_dict(), f)
    img = _image(offline / "a.png")
    assert main(["predict", "--model", "resnet18", "--weights", str(f), img]) == 2
    assert "--num-classes 5" in capsys.readouterr().err
    assert (
        main(
            ["predict", "--model", "resnet18", "--weights", str(f), "--num-classes", "5", "--top-k", "5", img]
        )
        == 0
    )
    out = capsys.readouterr()
    assert "5-class classifier" in out.err
    model = cnnzoo.create_model("resnet18", weights=str(f), num_classes=5)
    assert torch.equal(model.fc.weight, tuned.fc.weight)
    tuned.eval()
    model.eval()
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(model(x), tuned(x))
