"""The one option validator (cnnzoo.options) and the CLI's one-line usage errors."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnzoo.options import OptionError, Rule, option, validate


@dataclass
class Cfg:
    epochs: int = option(10, Rule(int, 1, 10_000))
    lr: float = option(0.1, Rule(float, 0, 10, lo_open=True))
    flip: bool | None = option(None, Rule(bool, optional=True))
    mode: str = option("a", Rule(str, choices=("a", "b")))


@pytest.mark.parametrize(
    "field,value",
    [
        ("epochs", 0),
        ("epochs", 10**23),
        ("epochs", 3.0),
        ("epochs", True),
        ("epochs", "abc"),
        ("epochs", None),
        ("lr", 0.0),
        ("lr", math.nan),
        ("lr", math.inf),
        ("lr", 1e308),
        ("lr", "abc"),
        ("flip", "yes"),
        ("flip", 1),
        ("mode", "evil"),
        ("mode", 3),
    ],
)
def test_out_of_range_or_wrong_type_is_one_line(field, value):
    cfg = Cfg()
    setattr(cfg, field, value)
    with pytest.raises(OptionError) as e:
        validate(cfg, source="config.json")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("config.json: " + field) and len(msg) < 200


def test_valid_values_pass_and_ints_count_as_floats():
    cfg = validate(Cfg(epochs=1, lr=1, flip=False, mode="b"))
    assert cfg.epochs == 1 and cfg.flip is False


@given(st.integers(min_value=-(2**80), max_value=2**80))
def test_int_bounds_are_inclusive(n):
    rule = Rule(int, 1, 10_000)
    if 1 <= n <= 10_000:
        assert rule.check("n", n) == n
    else:
        with pytest.raises(OptionError):
            rule.check("n", n)


def test_argtype_uses_the_same_rule():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=Rule(int, 1, 10_000).argtype("--epochs"))
    assert p.parse_args(["--epochs", "3"]).epochs == 3
    for bad in ("0", "1e3", "x", str(10**23)):
        with pytest.raises(SystemExit):
            p.parse_args(["--epochs", bad])


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "cnnzoo", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("args", [("train", "--no-such-option"), ("summary",), ("nope",)])
def test_usage_errors_are_one_line_with_a_hint(args):
    proc = _cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--help" in lines[0] and "Traceback" not in proc.stderr


# --- training options: one schema for the command line, the API and a resumed run's config.json ---

BAD_SAVED = [
    ("epochs", "abc"),
    ("lr", "abc"),
    ("crop_padding", 1e9),
    ("eval_batch_size", 0),
    ("limit", 0),
    ("label_smoothing", 5),
    ("seed", 2**70),
    ("warmup_epochs", 1e308),
    ("batch_size", 10**12),
    ("crop_padding", -5),
    ("hflip", "yes"),
    ("limit", -5),
    ("momentum", 1e308),
    ("progress", "evil"),
    ("seed", -1),
    ("epochs", 0),
    ("epochs", 10**23),
    ("lr", -1),
    ("lr", 0),
    ("weight_decay", -1),
    ("optimizer", "rmsprop"),
    ("schedule", "zigzag"),
    ("gamma", 0),
    ("validation_split", 1.0),
    ("threads", -4),
    ("milestones", [0.5, 2]),
    ("milestones", "half"),
    ("nesterov", "no"),
    ("channels_last", 1),
    ("step_every_epochs", -1),
    ("loss", "mse"),
]


@pytest.mark.parametrize("key,value", BAD_SAVED)
def test_a_resumed_config_gets_the_command_lines_checks(key, value):
    from cnnzoo.config import config_from

    with pytest.raises(OptionError) as e:
        config_from({"epochs": 3, key: value, "model": "lenet5"}, source="runs/x/config.json")
    assert str(e.value).startswith("runs/x/config.json: ") and "\n" not in str(e.value)


def test_a_config_that_is_not_an_object_is_refused():
    from cnnzoo.config import config_from

    with pytest.raises(OptionError, match="expected an object"):
        config_from([1, 2], source="config.json")


def test_cross_field_rules():
    from cnnzoo.config import config_from

    with pytest.raises(OptionError, match="warmup_epochs"):
        config_from({"epochs": 2, "warmup_epochs": 3})
    with pytest.raises(OptionError, match="resume needs"):
        config_from({"resume": True})


def test_every_training_option_has_a_rule():
    from dataclasses import fields

    from cnnzoo.config import TrainConfig

    # a tuple's rule is its items' (validate_config checks the tuple as a whole)
    unruled = [f.name for f in fields(TrainConfig) if not ({"rule", "item_rule"} & set(f.metadata))]
    assert unruled == []


def _train_help(monkeypatch) -> str:
    import cnnzoo.cli as cli

    monkeypatch.setenv("COLUMNS", "1000")  # one line per flag
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"].format_help()


def test_train_help_lists_every_training_option_with_its_range_and_default(monkeypatch):
    """The flags are made from TrainConfig: each field has one, with its range and its default."""
    from dataclasses import MISSING, fields

    from cnnzoo.config import TrainConfig

    entries: list[str] = []  # a flag's line and the lines its help continues on
    for line in _train_help(monkeypatch).splitlines():
        if line.startswith("  -"):
            entries.append(line)
        elif entries and line.startswith("   "):
            entries[-1] += " " + line.strip()
    lines = {e.split()[0].rstrip(","): " ".join(e.split()) for e in entries}
    for f in fields(TrainConfig):
        line = lines.get("--" + f.name.replace("_", "-"))
        assert line is not None, f"cnnzoo train --help has no flag for {f.name}"
        rule = f.metadata.get("rule") or f.metadata["item_rule"]
        assert f.default is not MISSING
        if f.metadata.get(
            "default_text"
        ):  # None ("choose for me") in words, or the command line's own default
            shown = f.metadata["default_text"]
        elif isinstance(f.default, bool):
            shown = "on" if f.default else "off"
        elif isinstance(f.default, tuple):
            shown = " ".join(f"{v:g}" for v in f.default)
        elif isinstance(f.default, (int, float)):
            shown = f"{int(f.default):,}" if float(f.default).is_integer() else f"{f.default:g}"
        else:
            shown = f.default
        assert f"default {shown})" in line, (f.name, line)
        if rule.kind in (int, float):
            assert rule.describe() in line, (f.name, line)
        for choice in rule.choices:
            assert choice in line


def test_generated_flags_parse_into_the_fields():
    import cnnzoo.cli as cli

    argv = "train --no-hflip --milestones 0.3 0.6 --betas 0.7 0.9 --lr 0.5 --freeze features --decay-all"
    args = cli.build_parser().parse_args(argv.split())
    assert (args.hflip, args.milestones, args.betas, args.lr) == (False, [0.3, 0.6], [0.7, 0.9], 0.5)
    assert (args.freeze, args.decay_all, args.epochs, args.nesterov) == ("features", True, None, None)


def test_train_command_does_not_restate_the_options():
    import inspect

    import cnnzoo.commands.train as train

    assert inspect.getsource(train).count("add_argument(") <= 10


def test_cli_resume_with_a_bad_config_is_one_line(tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps({"model": "lenet5_modern", "epochs": "abc"}))
    proc = _cli("train", "--out", str(tmp_path), "--resume")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "config.json: epochs must be an integer" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--epochs", "0"),
        ("--label-smoothing", "5"),
        ("--seed", str(2**70)),
        ("--warmup-epochs", "nan"),
        ("--crop-padding", "20000"),
        ("--threads", "-4"),
        ("--limit", "0"),
        ("--limit", "-1"),
        ("--epochs", str(10**23)),
        ("--batch-size", str(10**12)),
        ("--betas", "0.9", "1"),
        ("--milestones", "0.5", "2"),
        ("--milestones", "0.5", "nan"),
    ],
)
def test_cli_train_options_out_of_range(args):
    proc = _cli("train", *args)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert f"argument {args[0]}: must be" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("experiment", "lrn", "--seeds", "0"),
        ("experiment", "lrn", "--epochs", "-1"),
        ("summary", "lenet5", "--num-classes", "0"),
        ("weights", "fetch", "resnet18", "--timeout", "nan"),
    ],
)
def test_every_commands_numeric_options_have_ranges(args):
    proc = _cli(*args)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert f"argument {args[-2]}: must be" in proc.stderr


def test_no_command_option_is_an_unchecked_number():
    """Every numeric flag of every command goes through a Rule (cnnzoo.options), never a bare int/float."""
    import cnnzoo.cli as cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bare = []
    for name, p in sub.choices.items():
        parsers = [p] + [
            q for a in p._actions if isinstance(a, argparse._SubParsersAction) for q in a.choices.values()
        ]
        for q in parsers:
            bare += [f"{name} {a.option_strings}" for a in q._actions if a.type in (int, float)]
    assert bare == []
