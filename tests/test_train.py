"""The engine's pieces against references (torchvision, torch's schedulers), and fit/evaluate/predict."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from helpers import synthetic

import cnnzoo
from cnnzoo.checkpoint import load_checkpoint
from cnnzoo.cli import main
from cnnzoo.config import TrainConfig
from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.preprocess import preprocess
from cnnzoo.train import fit_to_size, lr_factor, make_optimizer, make_scheduler, random_crop, random_hflip

# --- augmentation ------------------------------------------------------------------------------------------


def test_random_crop_is_a_window_of_the_padded_image():
    x = torch.randint(0, 256, (64, 2, 10, 12), dtype=torch.uint8)
    out = random_crop(x, 3, torch.Generator().manual_seed(1))
    offsets = torch.randint(0, 7, (2, 64), generator=torch.Generator().manual_seed(1))  # same draws
    padded = TF.pad(x, [3, 3, 3, 3])
    for i in range(64):
        oy, ox = offsets[:, i].tolist()
        assert torch.equal(out[i], TF.crop(padded[i], oy, ox, 10, 12))
    assert len({tuple(o) for o in offsets.T.tolist()}) > 20  # really random shifts, not one


def test_random_hflip_flips_about_half():
    x = torch.randint(0, 256, (400, 1, 5, 7), dtype=torch.uint8)
    out = random_hflip(x, 0.5, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, TF.horizontal_flip(i)) for o, i in zip(out, x, strict=True)])
    same = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    assert bool((flipped | same).all()) and 150 < int(flipped.sum()) < 250


def test_fit_to_size_pads_mnist_into_lenets_32x32_field():
    x = torch.randint(1, 256, (2, 1, 28, 28), dtype=torch.uint8)
    y = fit_to_size(x, (32, 32))
    assert y.dtype == torch.uint8 and torch.equal(y[:, :, 2:30, 2:30], x)
    assert int(y.sum()) == int(x.sum())  # the border is zeros


def test_fit_to_size_resizes_cifar_for_alexnet_like_torchvision():
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(
        fit_to_size(x, (227, 227)), TF.resize(x.float(), [227, 227], antialias=True).clamp(0, 255)
    )


# --- optimisation ------------------------------------------------------------------------------------------


def _torch_lrs(make, steps, lr=0.1):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_cosine_and_step_schedules_match_torch():
    ours = [0.1 * lr_factor(s, 100, "cosine") for s in range(100)]
    ref = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=100), 100)
    assert ours == pytest.approx(ref, abs=1e-9)
    ours = [0.1 * lr_factor(s, 90, "step", step_every=30, gamma=0.1) for s in range(90)]
    ref = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=30, gamma=0.1), 90)
    assert ours == pytest.approx(ref, abs=1e-12)


def test_onecycle_warms_up_then_anneals():
    f = [lr_factor(s, 200, "onecycle") for s in range(200)]
    peak = max(range(200), key=f.__getitem__)
    assert 45 <= peak <= 55 and f[peak] == pytest.approx(1.0)  # 25% warmup
    assert f[0] < 0.05 and f[-1] < 1e-3
    assert all(a <= b for a, b in zip(f[:peak], f[1 : peak + 1], strict=True))


def test_linear_schedule_matches_torch_warmup_then_linear_decay():
    # ours: a 10% warmup from 1/(w+1), then a straight line to 0; torch: two LinearLRs in sequence
    w, n = 20, 200
    ours = [0.1 * lr_factor(s, n, "linear") for s in range(n)]
    ref = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.SequentialLR(
            o,
            [
                torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / (w + 1), end_factor=1.0, total_iters=w),
                torch.optim.lr_scheduler.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=n - w),
            ],
            milestones=[w],
        ),
        n,
    )
    assert ours == pytest.approx(ref, abs=1e-9)
    assert max(ours) == pytest.approx(0.1) and ours[-1] < 0.1 / (n - w) + 1e-12


def test_scheduler_and_optimizer_groups():
    model = cnnzoo.create_model("lenet5_modern")
    opt = make_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, weight_decay=5e-4))
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    decayed, plain = opt.param_groups
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in plain["params"])
    assert plain["weight_decay"] == 0.0 and decayed["weight_decay"] == 5e-4
    # He et al.'s recipe (the experiments): biases decay too
    everything = make_optimizer(model, TrainConfig(lr=0.1, weight_decay=1e-4, decay_all=True)).param_groups
    assert [g["weight_decay"] for g in everything] == [1e-4, 1e-4]
    assert isinstance(make_optimizer(model, TrainConfig(optimizer="adamw", lr=1e-3)), torch.optim.AdamW)
    sched = make_scheduler(opt, TrainConfig(epochs=10, schedule="cosine", warmup_epochs=2), steps_per_epoch=1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 3)  # warmup starts at 1/(w+1)
    with pytest.raises(CnnzooError, match="schedule"):
        make_scheduler(opt, TrainConfig(schedule="exponential"), steps_per_epoch=1)
    del sched


# --- fit / evaluate / predict ------------------------------------------------------------------------------


def test_fit_learns_and_writes_the_run(tmp_path):
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5_modern")
    h = cnnzoo.fit(model, synthetic(), epochs=3, batch_size=32, lr=0.1, out=str(tmp_path), progress="plain")
    assert h.test["accuracy"] > 0.8 and h.history["loss"][-1] < h.history["loss"][0]
    assert set(h.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    names = {p.name for p in tmp_path.iterdir()}
    assert names >= {
        "metrics.jsonl",
        "result.json",
        "curves.png",
        "confusion.png",
        "summary.txt",
        "config.json",
        "model.safetensors",
        "checkpoint.json",
        "train_state.pt",
    }
    import json

    result = json.loads((tmp_path / "result.json").read_text())
    for key in (
        "test_accuracy",
        "test_loss",
        "train_seconds",
        "train_images_per_second",
        "epochs",
        "world_size",
        "model",
        "dataset",
    ):
        assert result[key] is not None, key
    assert result["world_size"] == 1 and result["epochs"] == 3
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_evaluate_and_predict_agree_with_a_plain_loop(tmp_path):
    data = synthetic(n_train=256, n_test=200)
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5_modern")
    cnnzoo.fit(model, data, epochs=1, batch_size=32, lr=0.1, out=str(tmp_path), progress="quiet")
    loaded, meta = load_checkpoint(tmp_path)
    with torch.no_grad():  # the reference: preprocess + forward, one image at a time
        logits = torch.cat([loaded(preprocess(img, meta)) for img in data.test_images])
    m = cnnzoo.evaluate(loaded, data)
    assert m["accuracy"] == pytest.approx(float((logits.argmax(1) == data.test_labels).float().mean()))
    assert m["loss"] == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, data.test_labels)), rel=1e-5
    )
    assert int(m["confusion"].sum()) == 200
    probs = cnnzoo.predict(loaded, data.test_images[:5])
    torch.testing.assert_close(probs, logits[:5].softmax(1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))


def test_lenet5_1998_trains_with_its_paper_loss():
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5")  # 32×32 input: the 28×28 images are padded
    h = cnnzoo.fit(model, synthetic(), epochs=2, batch_size=32, lr=0.01, loss="lenet5", progress="quiet")
    # eq. 9 starts near 80 (squared distances to the ±1 bitmaps in 84 dimensions) and falls steadily
    loss = h.history["loss"]
    assert all(math.isfinite(v) for v in loss) and loss[-1] < 0.8 * loss[0]


def test_channel_mismatch_is_a_clear_one_line_error(tmp_path):
    rgb = synthetic(n_train=64, n_test=16, channels=3, name="cifar-like")
    model = cnnzoo.create_model("lenet5_modern")
    with pytest.raises(ShapeError) as e:
        cnnzoo.fit(model, rgb, epochs=1, progress="quiet")
    msg = str(e.value)
    assert "\n" not in msg and "3-channel" in msg and "lenet5_modern" in msg and "1 channel" in msg


def test_cli_eval_channel_mismatch_exits_2(tmp_path, capsys):
    """A 1-channel checkpoint evaluated on a 3-channel image folder: one line on stderr, exit code 2."""
    from PIL import Image

    cnnzoo.fit(
        cnnzoo.create_model("lenet5_modern"),
        synthetic(n_train=64, n_test=16),
        epochs=1,
        out=str(tmp_path / "run"),
        progress="quiet",
    )
    for split in ("train", "test"):
        for cls in ("a", "b"):
            d = tmp_path / "imgs" / split / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (28, 28), (i * 40, 90, 200)).save(d / f"{i}.png")
    capsys.readouterr()
    code = main(["eval", str(tmp_path / "run"), "--dataset", f"imagefolder:{tmp_path / 'imgs'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "channel" in err, err


def test_cli_train_then_eval_round_trip(tmp_path, capsys, monkeypatch):
    import cnnzoo.data

    monkeypatch.setattr(
        cnnzoo.data, "load_dataset", lambda name, data_dir=None: synthetic(n_train=256, n_test=64)
    )
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--batch-size", "32", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and str(out) in text
    assert main(["eval", str(out), "--json"]) == 0
    import json

    evaluated = json.loads(capsys.readouterr().out)
    result = json.loads((out / "result.json").read_text())
    assert evaluated["test_accuracy"] == result["test_accuracy"] and result["model"] == "lenet5_modern"


def test_bad_options_are_clear_errors():
    model = cnnzoo.create_model("lenet5_modern")
    with pytest.raises(CnnzooError, match="optimizer"):
        cnnzoo.fit(model, synthetic(64, 16), optimizer="rmsprop")
    with pytest.raises(TypeError):  # a misspelt option is not silently ignored
        cnnzoo.fit(model, synthetic(64, 16), epoch=3)


def test_cli_choices_match_the_engine():
    import argparse

    from cnnzoo.commands import train as cmd
    from cnnzoo.train.optim import OPTIMIZERS, SCHEDULES

    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    choices = {a.dest: a.choices for a in parser._actions}
    assert tuple(choices["optimizer"]) == tuple(OPTIMIZERS)
    assert tuple(choices["schedule"]) == tuple(SCHEDULES)


def test_milestones_schedule_matches_torch():
    ours = [0.1 * lr_factor(s, 100, "milestones", milestones=(0.5, 0.75)) for s in range(100)]
    ref = _torch_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[50, 75], gamma=0.1), 100)
    assert ours == pytest.approx(ref, abs=1e-12)


def test_fit_reports_every_epoch_and_records_the_test_set(tmp_path):
    from cnnzoo.card import card_of
    from cnnzoo.train import RunDir

    seen = []
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5_modern")
    data = synthetic(n_train=256, n_test=64)
    h = cnnzoo.fit(
        model,
        data,
        epochs=2,
        batch_size=32,
        lr=0.1,
        test_every_epoch=True,
        schedule="milestones",
        out=str(tmp_path),
        progress="quiet",
        on_epoch=seen.append,
    )
    assert [r["epoch"] for r in seen] == [1, 2] and seen == h.epochs
    assert {"test_loss", "test_accuracy"} <= set(h.history)
    assert h.test["accuracy"] == h.epochs[-1]["test_accuracy"]  # the last epoch's test is the final one
    card = card_of(model)  # completed with what it was trained on
    assert card.dataset == "synthetic" and card.classes == tuple(data.classes)
    assert card.mean == pytest.approx(data.mean) and card.input_size == (1, 28, 28)
    run = RunDir(tmp_path)  # what fit wrote reads back through the run directory's own readers
    assert run.read_metrics() == h.epochs and run.read_result()["test_accuracy"] == h.test["accuracy"]
    assert run.read_config()["schedule"] == "milestones"


def test_run_dir_refuses_a_corrupt_config_in_one_line(tmp_path):
    from cnnzoo.train import RunDir

    assert RunDir(tmp_path).read_config() is None and RunDir(tmp_path).read_metrics() == []
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CnnzooError, match="corrupt JSON"):
        RunDir(tmp_path).read_config()
