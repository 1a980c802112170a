"""Pretrained weights in use: predict with --weights, fine-tuning with frozen layers.

The weights are torchvision's resnet18 with its random initialisation, saved by the test and imported into
a temporary store: no network, and the comparison with torchvision's own model is exact.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.checkpoint import load_checkpoint
from cnnzoo.cli import main

torchvision = pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18-mine.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


@pytest.fixture
def store(tmp_path, monkeypatch, weights_file):
    monkeypatch.setenv("CNNZOO_WEIGHTS", str(tmp_path / "store"))
    monkeypatch.delenv("CNNZOO_OFFLINE", raising=False)
    assert main(["weights", "import", "resnet18", str(weights_file)]) == 0
    return tmp_path / "store"


def _photo(path, seed: int, size=(120, 90)) -> str:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8)
    Image.fromarray(pixels.numpy()).save(path)
    return str(path)


def test_predict_with_imported_weights_prints_imagenet_classes_equal_to_torchvision(
    store, weights_file, tmp_path, capsys
):
    photo = _photo(tmp_path / "photo.png", 1)
    capsys.readouterr()
    assert main(["predict", "--model", "resnet18", "--weights", "imagenet", photo, "--top-k", "5"]) == 0
    out = capsys.readouterr().out
    categories = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]

    model = cnnzoo.create_model("resnet18", weights="imagenet", offline=True)
    card = model.card
    assert card.resize == 256 and card.input_size == (3, 224, 224) and len(card.classes) == 1000
    predictor = cnnzoo.Predictor(model, channels_last=False)
    x = predictor.to_input(predictor.load_images([photo]))
    reference = torchvision.models.resnet18().eval()
    reference.load_state_dict(torch.load(weights_file, weights_only=True))
    with torch.no_grad():
        expected = torch.softmax(reference(x), dim=1)
    probs = predictor.predict(predictor.load_images([photo]))
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-6)
    for i in probs[0].topk(5).indices.tolist():
        assert categories[i] in out  # the class names the command printed are ImageNet's, in its order


def test_resize_crop_is_torchvisions_evaluation_transform():
    from torchvision.transforms import v2

    from cnnzoo.preprocess import resize_crop

    images = torch.rand(2, 3, 90, 130) * 255
    expected = v2.CenterCrop(224)(v2.Resize(256, antialias=True)(images))
    torch.testing.assert_close(resize_crop(images, 256, (224, 224)), expected.clamp(0, 255))


def _folder(root, per_class: int = 8):
    for k, colour in enumerate(((200, 40, 40), (40, 40, 200))):
        d = root / f"class{k}"
        d.mkdir(parents=True)
        for i in range(per_class):
            g = torch.Generator().manual_seed(10 * k + i)
            noise = torch.randint(-30, 30, (48, 48, 3), generator=g)
            pixels = (torch.tensor(colour) + noise).clamp(0, 255).to(torch.uint8)
            Image.fromarray(pixels.numpy()).save(d / f"{i}.png")
    return root


def test_train_freeze_features_trains_only_the_classifier(store, weights_file, tmp_path, monkeypatch):
    folder = _folder(tmp_path / "photos")
    run = tmp_path / "run"
    fixed = (
        "train resnet18 --freeze features --epochs 1 --limit 16 --input 3x64x64 "
        "--batch-size 4 --validation-split 0 --device cpu --no-bf16 --quiet"
    ).split()
    args = [*fixed, "--weights", str(weights_file), "--dataset", f"imagefolder:{folder}", "--out", str(run)]
    assert main(args) == 0

    # the optimizer had the classifier's two tensors only: 512 x 2 weights + 2 biases
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert sum(len(g["params"]) for g in state["optimizer"]["param_groups"]) == 2
    model, meta = load_checkpoint(run)
    trained = model.state_dict()
    assert sum(trained[k].numel() for k in ("fc.weight", "fc.bias")) == 512 * 2 + 2
    original = torch.load(weights_file, weights_only=True)
    frozen = [k for k in original if not k.startswith("fc.")]
    assert len(frozen) == len(trained) - 2
    for k in frozen:  # parameters and the batch norms' statistics: bit-identical
        assert torch.equal(trained[k], original[k]), k
    assert meta.classes == ("class0", "class1") and meta.input_size == (3, 64, 64)
    assert meta.mean == (0.485, 0.456, 0.406) and meta.resize == 73  # 224 of 256 -> 64 of 73

    sha256 = hashlib.sha256(weights_file.read_bytes()).hexdigest()
    for name in ("config.json", "result.json", "checkpoint.json"):
        record = json.loads((run / name).read_text())["pretrained"]
        assert record["sha256"] == sha256 and record["source"] == str(weights_file.resolve())
        assert record["model"] == "resnet18" and record["version"] == "imagenet:v1"

    # the run loads back with no network and no weights store
    monkeypatch.setenv("CNNZOO_OFFLINE", "1")
    monkeypatch.setenv("CNNZOO_WEIGHTS", str(tmp_path / "empty"))
    reloaded, _ = load_checkpoint(run)
    assert all(torch.equal(v, trained[k]) for k, v in reloaded.state_dict().items())
    assert main(["predict", str(run), str(next((folder / "class0").iterdir()))]) == 0


def test_freeze_until_and_lr_backbone(weights_file):
    from cnnzoo.config import TrainConfig
    from cnnzoo.train.finetune import freeze
    from cnnzoo.train.optim import make_optimizer

    model = cnnzoo.create_model("resnet18", 2, weights=str(weights_file), input_size=64)
    assert model.card.classes == () and model.card.model_kwargs["num_classes"] == 2
    frozen = freeze(model, freeze_until="layer3")
    assert frozen[-1].startswith("layer3.") and not any(n.startswith(("layer4", "fc")) for n in frozen)
    optimizer = make_optimizer(
        model, TrainConfig(optimizer="sgd", lr=0.1, weight_decay=5e-4, lr_backbone=0.001)
    )
    lrs = [(g["lr"], sum(p.numel() for p in g["params"])) for g in optimizer.param_groups]
    layer4 = sum(p.numel() for p in model.layer4.parameters())
    assert lrs[0][0] == lrs[1][0] == 0.1 and lrs[0][1] + lrs[1][1] == 512 * 2 + 2
    assert lrs[2][0] == lrs[3][0] == 0.001 and lrs[2][1] + lrs[3][1] == layer4


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--freeze", "features", "--freeze-until", "layer3"], "exclude each other"),
        (["--freeze-until", "layer9"], "no such module"),
        (["--freeze-until", "fc"], "nothing would train"),
    ],
)
def test_bad_freeze_options_are_one_line(weights_file, tmp_path, capsys, extra, words):
    folder = _folder(tmp_path / "photos", per_class=2)
    args = [
        "train",
        "resnet18",
        "--weights",
        str(weights_file),
        "--dataset",
        f"imagefolder:{folder}",
        "--epochs",
        "1",
        "--input",
        "3x32x32",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
        *extra,
    ]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def test_random_resized_crop_is_seeded_and_keeps_the_size():
    from cnnzoo.train.augment import random_resized_crop

    images = torch.randint(0, 256, (4, 3, 32, 40), dtype=torch.uint8)
    a = random_resized_crop(images, torch.Generator().manual_seed(3))
    b = random_resized_crop(images, torch.Generator().manual_seed(3))
    assert a.shape == (4, 3, 32, 40) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 255
    assert not torch.equal(a, random_resized_crop(images, torch.Generator().manual_seed(4)))


def test_summary_export_and_eval_take_weights(store, weights_file, tmp_path, capsys):
    capsys.readouterr()
    assert main(["summary", "resnet18", "--weights", str(weights_file), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["input"] == [3, 224, 224]
    out = tmp_path / "r18.safetensors"
    assert (
        main(["export", "resnet18", "--weights", "imagenet", "--format", "safetensors", "--out", str(out)])
        == 0
    )
    model, meta = load_checkpoint(out)  # an exported pretrained model is a checkpoint with the weights' card
    assert meta.resize == 256 and len(meta.classes) == 1000 and meta.pretrained["version"] == "imagenet:v1"
    capsys.readouterr()
    assert main(["predict", str(out), "--weights", "imagenet", _photo(tmp_path / "p.png", 2)]) == 2
    assert "model name" in capsys.readouterr().err


def test_offline_create_model_without_stored_weights_names_the_import(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNZOO_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(cnnzoo.CnnzooError, match="cnnzoo weights import resnet18:v1"):
        cnnzoo.create_model("resnet18", weights="imagenet", offline=True)
    assert cnnzoo.create_model("resnet18").card.pretrained == {}  # without weights: the registry's model
