"""LeNet-5 trained as in LeCun et al. 1998 (``cnnzoo train lenet5 --recipe paper``): the input scaling, the
stochastic diagonal Levenberg-Marquardt optimizer, the η table, the RBF bitmaps, and short runs end to end."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from helpers import fashion_available, synthetic

import cnnzoo
from cnnzoo.card import ModelCard, card_of
from cnnzoo.cli import main
from cnnzoo.config import TrainConfig
from cnnzoo.errors import CnnzooError
from cnnzoo.layers import RBF_DIGIT_BITMAPS, RBFOutput
from cnnzoo.preprocess import preprocess
from cnnzoo.train.optim import LENET1998_ETA, lenet1998_eta, lr_factor, make_optimizer, make_scheduler
from cnnzoo.train.recipes import LENET1998_MEAN, LENET1998_STD, NAMED_RECIPES, normalization_stats, recipe_for
from cnnzoo.train.sdlm import SDLM, estimate_curvature

# ---------------------------------------------------------------- §II.A: inputs from -0.1 to 1.175


def test_paper_scaling_is_exactly_background_minus_0_1_and_ink_1_175():
    assert LENET1998_STD == pytest.approx(1 / 1.275) and LENET1998_MEAN == pytest.approx(0.1 / 1.275)
    card = ModelCard(model="lenet5", input_size=(1, 32, 32), mean=(LENET1998_MEAN,), std=(LENET1998_STD,))
    x = preprocess(torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).repeat(1, 1, 32, 16), card)
    assert x[0, 0, 0, 0].item() == pytest.approx(-0.1, abs=1e-6)  # background
    assert x[0, 0, 0, 1].item() == pytest.approx(1.175, abs=1e-6)  # ink
    assert normalization_stats("dataset", (0.3,), (0.2,)) == ((0.3,), (0.2,))
    assert normalization_stats("lenet1998", (0.1, 0.2, 0.3), (1, 1, 1))[0] == (LENET1998_MEAN,) * 3


def test_fit_puts_the_paper_scaling_on_the_card_so_every_path_uses_it():
    model = cnnzoo.create_model("lenet5")
    data = synthetic(n_train=64, n_test=32)
    cnnzoo.fit(
        model,
        data,
        epochs=1,
        batch_size=32,
        lr=1e-4,
        optimizer="sdlm",
        schedule="lenet1998",
        loss="lenet5",
        normalization="lenet1998",
        validation_split=0.0,
        progress="quiet",
    )
    card = card_of(model)
    assert card.mean == (LENET1998_MEAN,) and card.std == (LENET1998_STD,)
    image = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    image[..., 10:20, 10:20] = 255
    x = preprocess(image, card)  # what training, cnnzoo predict and the web app feed the model: 28 -> 32
    assert x.shape == (1, 1, 32, 32)
    assert x.min().item() == pytest.approx(-0.1, abs=1e-6) and x.max().item() == pytest.approx(
        1.175, abs=1e-6
    )
    # the default stays the dataset's statistics
    other = cnnzoo.create_model("lenet5")
    cnnzoo.fit(other, data, epochs=1, batch_size=32, progress="quiet")
    assert card_of(other).mean == tuple(data.mean)


# ---------------------------------------------------------------- Appendix C: SDLM


def test_a_sdlm_step_is_eta_over_mu_plus_h_times_the_gradient():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0, -3.0]))
    opt = SDLM([w], lr=0.01, mu=0.02)
    h = torch.tensor([0.0, 0.98, 0.18])
    opt.set_curvature({w: h})
    w.grad = torch.tensor([0.5, -1.0, 2.0])
    opt.step()
    expected = torch.tensor([1.0, 2.0, -3.0]) - 0.01 / (0.02 + h) * torch.tensor([0.5, -1.0, 2.0])
    torch.testing.assert_close(w.detach(), expected)
    assert w.detach()[0].item() == pytest.approx(1.0 - 0.25)  # h = 0: the largest step, η/μ
    torch.testing.assert_close(opt.step_sizes(), 0.01 / (0.02 + h))


def test_sdlm_refuses_to_step_without_a_curvature_estimate():
    w = torch.nn.Parameter(torch.ones(2))
    w.grad = torch.ones(2)
    with pytest.raises(CnnzooError, match="curvature"):
        SDLM([w]).step()


@pytest.mark.parametrize("name", ["lenet5", "lenet5_modern"])  # the RBF Gauss-Newton, the sampled Fisher
def test_curvature_estimate_is_positive_for_every_parameter(name):
    torch.manual_seed(0)
    model = cnnzoo.create_model(name)
    card = card_of(model).replace(mean=(LENET1998_MEAN,), std=(LENET1998_STD,))
    images = synthetic(n_train=40, n_test=1).train_images
    h = estimate_curvature(model, images, lambda x: preprocess(x, card), torch.Generator().manual_seed(0), 40)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert set(h) == set(trainable)
    for p in trainable:
        assert h[p].shape == p.shape and bool((h[p] >= 0).all()) and h[p].sum() > 0
    assert model.training  # the estimate runs in eval() and puts the mode back
    if name == "lenet5":  # F6's bias: 2·f'(a)² with f'(0) = 1.7159·2/3 (small weights: a ≈ 0)
        assert h[model.f6.bias].mean().item() == pytest.approx(2 * (1.7159 * 2 / 3) ** 2, rel=0.05)


def test_make_optimizer_builds_sdlm_with_the_papers_mu():
    opt = make_optimizer(cnnzoo.create_model("lenet5"), TrainConfig(optimizer="sdlm", lr=5e-4))
    assert isinstance(opt, SDLM) and all(g["mu"] == 0.02 and g["lr"] == 5e-4 for g in opt.param_groups)


# ---------------------------------------------------------------- §III.C: η per pass


def test_the_eta_table_is_the_papers():
    paper = [0.0005] * 2 + [0.0002] * 3 + [0.0001] * 3 + [0.00005] * 4 + [0.00001] * 8
    assert [lenet1998_eta(e) for e in range(20)] == paper
    assert lenet1998_eta(100) == 0.00001 and LENET1998_ETA[0] == 0.0005


def test_the_lenet1998_schedule_steps_the_eta_per_epoch():
    steps = 7
    assert [lr_factor(e * steps, 20 * steps, "lenet1998", steps_per_epoch=steps) for e in range(20)] == [
        pytest.approx(lenet1998_eta(e) / 0.0005) for e in range(20)
    ]
    w = torch.nn.Parameter(torch.zeros(1))
    opt = SDLM([w], lr=0.0005)
    opt.set_curvature({w: torch.zeros(1)})
    w.grad = torch.zeros(1)
    sched = make_scheduler(opt, TrainConfig(epochs=20, schedule="lenet1998"), steps_per_epoch=steps)
    seen = []
    for step in range(20 * steps):
        if step % steps == 0:
            seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == [pytest.approx(lenet1998_eta(e)) for e in range(20)]
    with pytest.raises(CnnzooError, match="steps_per_epoch"):
        make_scheduler(opt, TrainConfig(epochs=100, schedule="lenet1998"), steps_per_epoch=0)


# ---------------------------------------------------------------- Fig. 3: the RBF centres


def test_rbf_bitmaps_are_ten_distinct_7x12_codes_of_plus_minus_one():
    assert len(RBF_DIGIT_BITMAPS) == 10
    codes = []
    for bitmap in RBF_DIGIT_BITMAPS:
        assert len(bitmap) == 12 and all(len(row) == 7 and set(row) <= {"#", "."} for row in bitmap)
        codes.append([1.0 if ch == "#" else -1.0 for ch in "".join(bitmap)])
    centres = RBFOutput(84, 10).centers
    assert centres.shape == (10, 84) and set(centres.unique().tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(centres, torch.tensor(codes))
    assert len({tuple(c) for c in codes}) == 10


# ---------------------------------------------------------------- the recipe


def test_paper_recipe_and_the_default_beside_it():
    paper = recipe_for("lenet5", "paper")
    assert paper == NAMED_RECIPES["paper"]["lenet5"]
    assert (paper["optimizer"], paper["schedule"], paper["normalization"], paper["loss"]) == (
        "sdlm",
        "lenet1998",
        "lenet1998",
        "lenet5",
    )
    assert paper["epochs"] == 20 and paper["weight_decay"] == 0 and paper["crop_padding"] == 0
    assert (
        recipe_for("lenet5") == recipe_for("lenet5", "default") and recipe_for("lenet5")["optimizer"] == "sgd"
    )
    with pytest.raises(CnnzooError, match="no 'paper' recipe for lenet5_modern"):
        recipe_for("lenet5_modern", "paper")
    with pytest.raises(CnnzooError, match="unknown recipe"):
        recipe_for("lenet5", "nope")


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _digits(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-like 28×28 light-on-dark digits: Fig. 3's 7×12 glyphs at 2×, shifted ±2 pixels, with noise."""
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    glyphs = [
        np.array([[ch == "#" for ch in row] for row in bm]).repeat(2, 0).repeat(2, 1)
        for bm in RBF_DIGIT_BITMAPS
    ]
    for i, y in enumerate(labels):
        r, c = 2 + rng.integers(-2, 3), 7 + rng.integers(-2, 3)
        images[i, r : r + 24, c : c + 14][glyphs[y]] = rng.integers(180, 256)
    return images, labels


@pytest.mark.slow
def test_paper_recipe_learns_synthetic_digits_from_mnist_format_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CNNZOO_DATA", str(tmp_path / "cache"))  # the parsed files are cached: not in ~/.cache
    rng = np.random.default_rng(0)
    d = tmp_path / "mnist"
    d.mkdir()
    for prefix, n in (("train", 3000), ("t10k", 300)):  # 600: too few steps at the small η
        x, y = _digits(n, rng)
        (d / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(x))  # raw: MNIST's .gz files have known MD5s
        (d / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(y))
    out = tmp_path / "run"
    argv = [
        "train",
        "lenet5",
        "--dataset",
        "mnist",
        "--data-dir",
        str(d),
        "--recipe",
        "paper",
        "--epochs",
        "3",
    ]
    assert main([*argv, "--out", str(out), "--quiet", "--threads", "1"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["loss"] < records[0]["loss"]
    result = json.loads((out / "result.json").read_text())
    assert result["test_accuracy"] > 0.5  # chance is 0.1; 0.9967 when written
    config = json.loads((out / "config.json").read_text())
    assert (
        config["optimizer"] == "sdlm"
        and config["normalization"] == "lenet1998"
        and config["batch_size"] == 32
    )
    assert json.loads((out / "checkpoint.json").read_text())["std"] == [pytest.approx(LENET1998_STD)]


@pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST is not on this machine")
def test_paper_recipe_on_fashion_mnist_through_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "lenet5", "--recipe", "paper", "--limit", "2000", "--epochs", "2", "--threads", "1"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert result["epochs"] == 2 and result["test_accuracy"] > 0.2


def test_paper_recipe_resumes_exactly(tmp_path, monkeypatch):
    """The curvature is re-estimated from (seed, epoch), so a resumed run repeats it bit for bit."""
    from cnnzoo import checkpoint as ckpt

    data = synthetic(n_train=256, n_test=64)
    opts = recipe_for("lenet5", "paper") | dict(epochs=2, seed=3, progress="quiet", device="cpu")

    def model(seed=0):
        torch.manual_seed(seed)
        return cnnzoo.create_model("lenet5")

    full = cnnzoo.fit(model(), data, out=str(tmp_path / "full"), **opts)
    real, calls = ckpt.save_checkpoint, []

    def crash_after_first(*a, **k):
        real(*a, **k)
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt("simulated crash after epoch 1's checkpoint")

    monkeypatch.setattr(ckpt, "save_checkpoint", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        cnnzoo.fit(model(), data, out=str(tmp_path / "cut"), **opts)
    monkeypatch.undo()
    resumed = cnnzoo.fit(model(seed=9), data, out=str(tmp_path / "cut"), resume=True, **opts)
    assert [r["loss"] for r in resumed.epochs] == [r["loss"] for r in full.epochs]
    a, _ = ckpt.load_checkpoint(tmp_path / "full")
    b, _ = ckpt.load_checkpoint(tmp_path / "cut")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
