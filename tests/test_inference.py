"""Predictor (torch / onnxruntime backends), image loading and ``cnnzoo predict``."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import FASHION_CLASSES
from PIL import Image, ImageDraw

from cnnzoo.checkpoint import CheckpointMeta, save_checkpoint
from cnnzoo.cli import main
from cnnzoo.errors import DataError, ShapeError
from cnnzoo.inference import Predictor, load_image
from cnnzoo.models import create_model

FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def fashion_images(n: int) -> np.ndarray:
    """The first ``n`` Fashion-MNIST test images, uint8 (n, 28, 28), read straight from the IDX file."""
    if not FASHION.exists():
        pytest.skip("Fashion-MNIST is not installed")
    with gzip.open(FASHION) as f:
        header = np.frombuffer(f.read(16), ">u4")
        assert header[0] == 2051 and tuple(header[2:]) == (28, 28)
        return np.frombuffer(f.read(n * 784), np.uint8).reshape(n, 28, 28)


# ------------------------------------------------------------------------------------------ load_image


def test_grayscale_is_itu_r_601_luminance(tmp_path):
    Image.new("RGB", (40, 30), (200, 100, 50)).save(tmp_path / "c.png")
    img = load_image(tmp_path / "c.png", channels=1, size=(8, 8), invert=False)
    assert img.dtype == torch.uint8 and img.shape == (1, 8, 8)
    expected = 0.299 * 200 + 0.587 * 100 + 0.114 * 50  # 124.2
    assert (img.int() - round(expected)).abs().max() <= 1


def test_rgb_and_size_and_centre_crop(tmp_path):
    # 60×20: left third red, middle green, right blue. A square centre crop keeps only the green part.
    im = Image.new("RGB", (60, 20), (255, 0, 0))
    im.paste((0, 255, 0), (20, 0, 40, 20))
    im.paste((0, 0, 255), (40, 0, 60, 20))
    im.save(tmp_path / "stripes.png")
    img = load_image(tmp_path / "stripes.png", channels=3, size=(10, 10))
    assert img.shape == (3, 10, 10)
    inner = img[:, :, 1:-1]  # the antialiased resize blends the outermost columns with the crop's edge
    assert inner[1].min() == 255 and inner[0].max() == 0 and inner[2].max() == 0
    assert img[0].float().mean() < 30 and img[2].float().mean() < 30  # red and blue were cropped away
    assert load_image(tmp_path / "stripes.png", 3, (12, 24)).shape == (3, 12, 24)  # H, W order


def test_real_fashion_mnist_image_round_trips_exactly(tmp_path):
    """A Fashion-MNIST image saved as PNG comes back bit for bit (light on dark: not inverted); its negative,
    i.e. the same garment drawn dark on light, is inverted back by invert='auto'."""
    (pixels,) = fashion_images(1)
    Image.fromarray(pixels).save(tmp_path / "item.png")
    Image.fromarray(255 - pixels).save(tmp_path / "drawing.png")
    original = torch.from_numpy(pixels.copy())[None]
    assert torch.equal(load_image(tmp_path / "item.png", 1, 28), original)
    assert torch.equal(load_image(tmp_path / "drawing.png", 1, 28), original)
    assert torch.equal(load_image(tmp_path / "drawing.png", 1, 28, invert=False), 255 - original)


def draw_one(path: Path, background, stroke, mode="L", size=(200, 150)) -> None:
    im = Image.new(mode, size, background)
    ImageDraw.Draw(im).line([(100, 20), (100, 130)], fill=stroke, width=14)
    im.save(path)


def test_invert_auto_follows_the_border(tmp_path):
    draw_one(tmp_path / "dark_on_light.png", 255, 0)
    draw_one(tmp_path / "light_on_dark.png", 0, 255)
    a = load_image(tmp_path / "dark_on_light.png", 1, 28)
    b = load_image(tmp_path / "light_on_dark.png", 1, 28)
    for img in (a, b):  # both end up MNIST-style: black border, bright stroke in the middle column
        assert img[0, 0].max() == 0 and img[0, :, 0].max() == 0
        assert img[0, 14, 13:15].min() > 200
    assert torch.equal(a, b)
    forced = load_image(tmp_path / "light_on_dark.png", 1, 28, invert=True)
    assert torch.equal(forced, 255 - b)


def test_colour_images_are_never_auto_inverted(tmp_path):
    draw_one(tmp_path / "rgb.png", (255, 255, 255), (0, 0, 0), mode="RGB")
    img = load_image(tmp_path / "rgb.png", 3, 32)
    assert img[:, 0, 0].tolist() == [255, 255, 255]


def test_transparent_background_counts_as_white(tmp_path):
    """A canvas export: black strokes on a fully transparent background (RGBA (0, 0, 0, 0) everywhere)."""
    draw_one(tmp_path / "canvas.png", (0, 0, 0, 0), (0, 0, 0, 255), mode="RGBA")
    img = load_image(tmp_path / "canvas.png", 1, 28)
    assert img[0, 0].max() == 0  # background became white, then auto-inverted to black
    assert img[0, 14, 13:15].min() > 200  # the stroke is bright


def test_jpeg_matches_png_closely(tmp_path):
    draw_one(tmp_path / "one.png", 255, 0)
    Image.open(tmp_path / "one.png").save(tmp_path / "one.jpg", quality=95)
    png = load_image(tmp_path / "one.png", 1, 28).float()
    jpg = load_image(tmp_path / "one.jpg", 1, 28).float()
    assert (png - jpg).abs().mean() < 3


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "not an image"),
        (b"hello, not an image at all", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image.png"),
    ],
)
def test_non_images_raise_data_error_naming_the_file(tmp_path, content, message):
    (tmp_path / "image.png").write_bytes(content)
    with pytest.raises(DataError, match="image.png") as e:
        load_image(tmp_path / "image.png", 1, 28)
    assert message in str(e.value)


def test_truncated_png_and_jpeg_raise_data_error(tmp_path):
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    for fmt in ("PNG", "JPEG"):
        full = tmp_path / f"full.{fmt}"
        im.save(full, fmt)
        data = full.read_bytes()
        cut = tmp_path / f"cut.{fmt}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(DataError, match=f"cut.{fmt}: corrupt or truncated"):
            load_image(cut, 3, 32)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="missing.png: no such file"):
        load_image(tmp_path / "missing.png", 1, 28)
    with pytest.raises(DataError, match="is a directory"):
        load_image(tmp_path, 1, 28)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width×height pixels but carries only a few bytes of (invalid) data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(50_000, 50_000))  # 2.5 G pixels in 100 bytes
    with pytest.raises(DataError, match="bomb.png: .*(decompression bomb|too large)"):
        load_image(path, 1, 28)
    path.write_bytes(png_header_only(8000, 6000))  # 48 M pixels: under Pillow's limit, over ours
    with pytest.raises(DataError, match="more than the limit"):
        load_image(path, 1, 28)


# ------------------------------------------------------------------------------------------- Predictor


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    """A LeNet-5 checkpoint as `cnnzoo train` writes it, for Fashion-MNIST (28×28 images, padded to 32)."""
    torch.manual_seed(0)
    model = create_model("lenet5")
    meta = CheckpointMeta(
        model="lenet5",
        model_kwargs={"num_classes": 10},
        input_size=[1, 32, 32],
        dataset="fashion-mnist",
        classes=FASHION_CLASSES,
        mean=[0.2860],
        std=[0.3530],
    )
    run = save_checkpoint(tmp_path_factory.mktemp("run"), model, meta)
    return run, model.eval()


def reference_probabilities(model, images_uint8: torch.Tensor) -> torch.Tensor:
    """Training's preprocessing written out by hand: pad 28 -> 32 (2 each side), /255, normalise."""
    x = F.pad(images_uint8.float(), (2, 2, 2, 2)) / 255.0
    x = (x - 0.2860) / 0.3530
    with torch.no_grad():
        return torch.softmax(model(x), dim=1)


def test_from_checkpoint_predicts_like_the_model_on_real_images(lenet_run, tmp_path):
    run, model = lenet_run
    pixels = fashion_images(5)
    paths = []
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    predictor = Predictor.from_checkpoint(run)
    assert predictor.classes == FASHION_CLASSES
    images = predictor.load_images(paths)
    assert images.shape == (5, 1, 28, 28) and torch.equal(images[:, 0], torch.from_numpy(pixels.copy()))
    probs = predictor.predict(images)
    torch.testing.assert_close(probs, reference_probabilities(model, images), rtol=0, atol=1e-6)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))

    top = predictor.topk(images, k=3)
    for row, p in zip(top, probs, strict=True):
        names = [name for name, _ in row]
        values = [v for _, v in row]
        assert values == sorted(values, reverse=True)
        assert names[0] == FASHION_CLASSES[int(p.argmax())]
        assert values[0] == pytest.approx(float(p.max()))


def test_onnxruntime_backend_matches_torch(lenet_run):
    run, _ = lenet_run
    images = torch.from_numpy(fashion_images(7).copy())[:, None]
    torch_probs = Predictor.from_checkpoint(run).predict(images)
    ort_probs = Predictor.from_checkpoint(run, backend="onnxruntime").predict(images)
    torch.testing.assert_close(ort_probs, torch_probs, rtol=0, atol=1e-6)


def test_batching_and_channels_last_do_not_change_results():
    torch.manual_seed(0)
    model = create_model("lenet5_modern")
    images = torch.randint(0, 256, (9, 1, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        expected = torch.softmax(model.eval()(images.float() / 255), dim=1)
    for kwargs in (
        {"batch_size": 64, "channels_last": False},
        {"batch_size": 64},
        {"batch_size": 4},  # 4 + 4 + 1
        {"batch_size": 1, "channels_last": True},
        {"batch_size": 4, "backend": "onnxruntime"},  # the dynamic batch of the ONNX graph: 4, then 1
    ):
        probs = Predictor(model, **kwargs).predict(images)
        torch.testing.assert_close(probs, expected, rtol=0, atol=1e-6, msg=str(kwargs))


def test_channels_last_by_default_with_the_same_results():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=5).eval()  # CIFAR ResNet: 3×32×32, batch norm, shortcuts
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        expected = torch.softmax(model(images.float() / 255), dim=1)
    predictor = Predictor(model)
    assert predictor.channels_last
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(predictor.predict(images), expected, rtol=0, atol=1e-5)
    assert not Predictor(create_model("lenet5"), backend="onnxruntime").channels_last  # torch backend only


def test_predictor_rejects_wrong_inputs():
    predictor = Predictor(create_model("lenet5"))
    with pytest.raises(DataError, match="uint8"):
        predictor.predict(torch.rand(1, 1, 32, 32))
    with pytest.raises(ShapeError, match="1-channel"):
        predictor.predict(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="backend"):
        Predictor(create_model("lenet5"), backend="tensorrt")


# ----------------------------------------------------------------------------------------- cnnzoo predict


def test_cli_predict_prints_class_names(lenet_run, tmp_path, capsys):
    run, model = lenet_run
    pixels = fashion_images(2)
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(tmp_path / f"{i}.png")
    args = ["predict", str(run), str(tmp_path / "0.png"), str(tmp_path / "1.png"), "--top-k", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    probs = reference_probabilities(model, torch.from_numpy(pixels.copy())[:, None])
    for p in probs:
        assert FASHION_CLASSES[int(p.argmax())] in out
        assert f"{float(p.max()):.4f}" in out
    assert main(args + ["--backend", "onnxruntime"]) == 0
    assert capsys.readouterr().out == out


def test_cli_predict_errors_are_one_line(lenet_run, tmp_path, capsys):
    run, _ = lenet_run
    (tmp_path / "notes.png").write_text("not a picture")
    assert main(["predict", str(run), str(tmp_path / "notes.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.png" in err and "Traceback" not in err
    assert main(["predict", str(run), str(tmp_path / "0.png"), "--flip"]) == 2
    assert "--dense" in capsys.readouterr().err


def test_cli_predict_dense(tmp_path, capsys):
    """VGG's dense evaluation through cnnzoo.convert, on a small net (lenet5_ng: conv + FC head)."""
    draw_one(tmp_path / "one.png", 255, 0)
    heat = tmp_path / "heat.png"
    args = ["predict", "lenet5_ng", str(tmp_path / "one.png"), "--dense", "--scales", "32,48", "--flip"]
    assert main(args + ["--heatmap", str(heat)]) == 0
    out = capsys.readouterr().out
    assert "one.png" in out
    assert Image.open(heat).size[0] > 100


def test_predict_function_uses_the_models_card(lenet_run):
    """cnnzoo.inference.predict: uint8 images -> probabilities with the card's preprocessing; float images
    are taken as already preprocessed; mean/std override the card's. Built on the Predictor."""
    from cnnzoo.checkpoint import load_checkpoint
    from cnnzoo.inference import predict

    run, model = lenet_run
    loaded, _ = load_checkpoint(run)
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    expected = reference_probabilities(model, images)
    torch.testing.assert_close(predict(loaded, images, batch_size=2), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(predict(loaded, images[0]), expected[:1], rtol=0, atol=1e-6)
    x = (F.pad(images.float(), (2, 2, 2, 2)) / 255.0 - 0.2860) / 0.3530
    torch.testing.assert_close(predict(loaded, x), expected, rtol=0, atol=1e-6)
    plain = F.pad(images.float(), (2, 2, 2, 2)) / 255.0
    with torch.no_grad():
        unnormalised = torch.softmax(model(plain), dim=1)
    torch.testing.assert_close(
        predict(loaded, images, mean=[0.0], std=[1.0]), unnormalised, rtol=0, atol=1e-6
    )
