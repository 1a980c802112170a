"""Tables never cut a number or a name (issue 16, item 3): on a narrow terminal columns are left out with a
note, cells wrap rather than end in "…", and a pipe gets the whole table, whatever COLUMNS says."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest
from rich.console import Console

import cnnzoo


def _terminal(renderable, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None, record=True)
    console.print(renderable)
    return console.export_text()


def _cli(*args: str, columns: int = 80) -> str:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-m", "cnnzoo", *args], capture_output=True, text=True, env=env, check=True
    ).stdout


NUMBER_CUT = re.compile(r"[\d,×]…|…[\d,×]")  # an ellipsis touching a digit or a shape


@pytest.mark.parametrize("width", [60, 80, 200])
@pytest.mark.parametrize("name", ["lenet5", "resnet18"])
def test_summary_on_a_terminal_fits_and_cuts_nothing(name, width):
    s = cnnzoo.summary(name)
    text = _terminal(s, width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert not NUMBER_CUT.search(text)
    cells = [line.split("│") for line in text.splitlines() if line.startswith("│")]
    names = {c[1].strip() for c in cells}
    for row in s.layers:  # names, output shapes, params and MACs are never left out nor cut
        if len(row.name) + 4 < width // 3:
            assert row.name in names
        shape = "×".join(map(str, row.output_shape))
        assert shape in text
        for n in (row.params, row.macs):
            if n:
                assert f"{n:,}" in text
    narrow = width < 120
    assert ("left out to fit" in " ".join(text.split())) == narrow
    if not narrow:
        assert all(col in text for col in ("FLOPs", "connections", "RF (size/jump)"))


@pytest.mark.slow
def test_summary_piped_is_printed_in_full_whatever_columns_says():
    for columns in (60, 80):
        out = _cli("summary", "lenet5", columns=columns)
        assert "122,304" in out and "6×28×28" in out and "340,908" in out
        assert "…" not in out and "left out" not in out
        assert "RF (size/jump)" in out and "connections" in out


def test_str_of_a_summary_is_the_whole_table():
    text = str(cnnzoo.summary("lenet5"))
    assert "122,304" in text and "…" not in text and "left out" not in text


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_models_piped_never_truncates_a_description(columns):
    out = _cli("models", columns=columns)
    assert "…" not in out
    d2l = next(line for line in out.splitlines() if line.strip().startswith("lenet_d2l"))
    assert cnnzoo.get_model_info("lenet_d2l").description in d2l  # one whole line, to its end
    assert "alexnet_ng" in out


def test_models_labels_published_figures_with_their_source():
    out = _cli("models", "resnet20")
    assert "He et al. 2015, Table 6" in out and "8.75% test error on CIFAR-10" in out
    out = _cli("models", "lenet5")
    assert "LeCun et al. 1998" in out and "0.95% test error on MNIST" in out


@pytest.mark.parametrize("width", [60, 80])
def test_models_on_a_narrow_terminal_wraps_instead_of_cutting(width, monkeypatch):
    from cnnzoo.commands import models

    buf = io.StringIO()
    monkeypatch.setattr(
        "rich.console.Console",
        lambda *a, **k: Console(file=buf, width=width, force_terminal=True, color_system=None),
    )
    models.run(type("Args", (), {"pattern": "lenet*"})())
    text = buf.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    assert "44,426" in text.replace("\n", " ")


@pytest.mark.slow
def test_a_piped_train_prints_the_whole_layer_table(tmp_path):
    """cnnzoo train's own log (stdout to a pipe, COLUMNS 80 or unset) never cuts a layer name or a number."""
    pytest.importorskip("cnnzoo.data").load_dataset("fashion-mnist", download=False)
    s = cnnzoo.summary("keras_mnist_cnn")
    for columns in (80, None):
        env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
        if columns:
            env["COLUMNS"] = str(columns)
        fixed = "-m cnnzoo train keras_mnist_cnn --epochs 1 --limit 32 --device cpu".split()
        out = subprocess.run(
            [sys.executable, *fixed, "--out", str(tmp_path / f"run{columns}")],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│ ")}
        for row in s.layers:  # every name on one line, with its numbers whole
            assert row.name in rows, out
            for n in (row.params, row.macs, row.flops, row.connections):
                if n:
                    assert f" {n:,} " in rows[row.name]
        assert not NUMBER_CUT.search(out) and "left out" not in out


TOTAL = re.compile(r"([\d,]+) (MACs|FLOPs) \(([\d.]+)(?: ([KMGT]))?\)")


@pytest.mark.parametrize("name", ["lenet5", "keras_mnist_cnn", "alexnet", "vgg16"])
def test_mac_and_flop_totals_read_in_sensible_units(name):
    """LeNet's 0.33 M MACs are not "0.000 G": the unit fits the size (1 ≤ shown < 1000, 3 significant digits)."""
    out = _cli("summary", name)
    found = TOTAL.findall(out)
    assert [kind for _, kind, _, _ in found] == ["MACs", "FLOPs"]
    for count, _, shown, unit in found:
        exact = int(count.replace(",", ""))
        scale = 1000 ** ("KMGT".index(unit) + 1) if unit else 1
        assert 1 <= float(shown) < 1000
        assert abs(float(shown) * scale - exact) <= 0.005 * exact
    if name == "alexnet":  # torchvision's published figure for its AlexNet: 0.714 G MACs
        assert "(714 M)" in out
