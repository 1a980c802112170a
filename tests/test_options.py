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
    [("epochs", 0), ("epochs", 10**23), ("epochs", 3.0), ("epochs", True), ("epochs", "abc"), ("epochs", None),
     ("lr", 0.0), ("lr", math.nan), ("lr", math.inf), ("lr", 1e308), ("lr", "abc"),
     ("flip", "yes"), ("flip", 1), ("mode", "evil"), ("mode", 3)],
)  # fmt: skip
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
