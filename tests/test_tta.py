"""The test-time flip (cnnzoo.tta): fit records it only where training mirrors, and every prediction path
(evaluate, the Predictor in both backends, ONNX and TorchScript files) gives the mean of the logits of the
image and of its mirror image, computed here independently with torchvision's own flip."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import fashion_available, synthetic
from torchvision.transforms.v2 import functional as TF

import cnnzoo
from cnnzoo.checkpoint import load_checkpoint
from cnnzoo.cli import main
from cnnzoo.errors import CheckpointError
from cnnzoo.inference import Predictor
from cnnzoo.preprocess import preprocess
from cnnzoo.tta import FlipAveraged, for_prediction


def _two_views(model, x):
    """The reference: two separate forward passes, torchvision's horizontal flip, the mean of the logits."""
    with torch.no_grad():
        return (model(x) + model(TF.horizontal_flip(x))) / 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """lenet5_modern after one epoch on the synthetic set with mirroring and test_flip, saved and reloaded."""
    out = tmp_path_factory.mktemp("tta")
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5_modern")
    data = synthetic()
    history = cnnzoo.fit(
        model,
        data,
        epochs=1,
        batch_size=32,
        hflip=True,
        test_flip=True,
        crop_padding=0,
        out=str(out),
        progress="quiet",
    )
    loaded, meta = load_checkpoint(out)
    return history, loaded.eval(), meta, data, out


def test_fit_records_the_flip_in_the_card_and_the_checkpoint(trained):
    history, model, meta, _, out = trained
    assert meta.test_flip and model.card.test_flip
    assert json.loads((out / "checkpoint.json").read_text())["test_flip"] is True


@pytest.mark.parametrize("hflip", [False, None])
def test_no_flip_at_test_time_without_mirroring_in_training(hflip):
    """hflip off (or None on a dataset that may not be mirrored: digits) leaves the card without the flip."""
    model = cnnzoo.create_model("lenet5_modern")
    data = synthetic(name="mnist") if hflip is None else synthetic()  # MNIST's facts: no mirroring
    cnnzoo.fit(model, data, epochs=1, batch_size=64, hflip=hflip, test_flip=True, limit=64, progress="quiet")
    assert model.card.test_flip is False
    assert for_prediction(model) is model


def test_evaluate_and_the_result_are_the_flip_averaged_accuracy(trained):
    history, model, meta, data, _ = trained
    x = preprocess(data.test_images, meta)
    both = _two_views(model, x).argmax(1)
    with torch.no_grad():
        one = model(x).argmax(1)
    expected = float((both == data.test_labels).float().mean())
    assert cnnzoo.evaluate(model, data)["accuracy"] == pytest.approx(expected, abs=1e-9)
    assert history.result["test_accuracy"] == pytest.approx(expected, abs=1e-9)
    assert history.result["test_accuracy_no_flip"] == pytest.approx(
        float((one == data.test_labels).float().mean()), abs=1e-9
    )


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_the_predictor_averages_the_two_views(trained, backend):
    _, model, meta, data, _ = trained
    images = data.test_images[:5]
    expected = _two_views(model, preprocess(images, meta))
    got = Predictor(model, meta, backend=backend).logits(images)
    assert torch.allclose(got, expected, atol=1e-5)
    one_view = model(preprocess(images, meta)).detach()
    assert not torch.allclose(got, one_view, atol=1e-3)  # the flip did something


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_onnx_and_torchscript_files_hold_the_flip(trained, tmp_path):
    import onnxruntime as ort

    _, model, meta, data, _ = trained
    x = preprocess(data.test_images[:3], meta).float()
    expected = _two_views(model, x)
    cnnzoo.export.export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
    assert torch.allclose(got, expected, atol=1e-5)
    cnnzoo.export.export_torchscript(model, tmp_path / "m.pt")
    scripted = torch.jit.load(str(tmp_path / "m.pt"))  # our own file, just written
    assert torch.allclose(scripted(x), expected, atol=1e-5)


def test_the_wrapper_is_applied_once_and_keeps_the_card(trained):
    _, model, meta, _, _ = trained
    wrapped = for_prediction(model)
    assert isinstance(wrapped, FlipAveraged) and wrapped.card == model.card
    assert for_prediction(wrapped) is wrapped


def test_a_bad_test_flip_in_checkpoint_json_is_one_line(trained, tmp_path):
    _, _, _, _, out = trained
    import shutil

    run = tmp_path / "run"
    shutil.copytree(out, run)
    record = json.loads((run / "checkpoint.json").read_text())
    (run / "checkpoint.json").write_text(json.dumps(record | {"test_flip": "yes"}))
    with pytest.raises(CheckpointError, match="'test_flip' must be true or false"):
        load_checkpoint(run)


@pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST is not on this machine")
def test_the_command_line_reports_both_accuracies_and_exports_the_flip(tmp_path, capsys):
    """lenet5_modern's recipe has the flip: `cnnzoo train` prints the accuracy without it too, and `cnnzoo
    export` says the file holds it; `--no-test-flip` turns it off (card, result and output)."""
    run = tmp_path / "run"
    assert main(["train", "--limit", "512", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    result = json.loads((run / "result.json").read_text())
    assert f"without it {result['test_accuracy_no_flip']:.4f}" in out
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    assert "with its test-time flip" in capsys.readouterr().out
    plain = tmp_path / "plain"
    argv = ["train", "--limit", "512", "--epochs", "1", "--no-test-flip", "--out", str(plain), "--quiet"]
    assert main(argv) == 0
    assert "without it" not in capsys.readouterr().out
    assert "test_accuracy_no_flip" not in json.loads((plain / "result.json").read_text())
    assert "test_flip" not in json.loads((plain / "checkpoint.json").read_text())
