"""The training options of the recipe search: their checks and that they reach training."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import fashion_available, synthetic

import cnnzoo
from cnnzoo.checkpoint import load_train_state
from cnnzoo.cli import main
from cnnzoo.config import TrainConfig, config_from
from cnnzoo.options import OptionError
from cnnzoo.train import make_optimizer


@pytest.mark.parametrize(
    "betas",
    [
        (0.9,),
        (0.9, 0.99, 0.9),
        (0.9, 1.0),
        (-0.1, 0.9),
        "0.9,0.99",
        (True, 0.9),
        (float("nan"), 0.9),
        (0.9, None),
    ],
)
def test_bad_betas_are_one_line(betas):
    with pytest.raises(OptionError) as e:
        config_from({"betas": betas}, source="runs/x/config.json")
    message = str(e.value)
    assert message.startswith("runs/x/config.json: betas must be") and "\n" not in message


def test_betas_from_a_saved_config_become_a_tuple():
    assert config_from({"betas": [0.7, 0.9]}, source="config.json").betas == (0.7, 0.9)
    assert config_from({}).betas is None


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_betas_reach_adam(name):
    model = torch.nn.Linear(3, 2)
    assert make_optimizer(model, TrainConfig(optimizer=name, betas=(0.7, 0.9))).defaults["betas"] == (
        0.7,
        0.9,
    )
    assert make_optimizer(model, TrainConfig(optimizer=name)).defaults["betas"] == (
        0.9,
        0.999,
    )  # torch's, as before


def test_fit_trains_with_the_betas_and_saves_them(tmp_path):
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5_modern")
    cnnzoo.fit(
        model,
        synthetic(),
        epochs=1,
        batch_size=32,
        lr=3e-3,
        optimizer="adam",
        betas=(0.7, 0.9),
        out=str(tmp_path),
        progress="quiet",
    )
    groups = load_train_state(tmp_path)["optimizer"]["param_groups"]
    assert [tuple(g["betas"]) for g in groups] == [(0.7, 0.9)] * len(groups)
    assert json.loads((tmp_path / "config.json").read_text())["betas"] == [0.7, 0.9]


@pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST is not on this machine")
def test_betas_and_milestones_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    fixed = (
        "train --limit 256 --epochs 1 --optimizer adam --betas 0.7 0.9 "
        "--schedule milestones --milestones 0.3 0.6 0.9 --quiet"
    ).split()
    argv = [*fixed, "--out", str(out)]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["betas"] == [0.7, 0.9] and config["milestones"] == [0.3, 0.6, 0.9]
    groups = load_train_state(out)["optimizer"]["param_groups"]
    assert [tuple(g["betas"]) for g in groups] == [(0.7, 0.9)] * len(groups)
