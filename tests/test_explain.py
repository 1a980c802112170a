"""Every number explained: each printed formula evaluates to its printed value, and that value is the
analyzer's own figure, for every zoo model at its default input; the CLI and the HTTP API give the same."""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from fractions import Fraction

import pytest
import torch
import torchvision

import cnnzoo
from cnnzoo.figures import FIGURES

FIELDS = [f.key for f in FIGURES]

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_CALLS = {"floor": math.floor, "ceil": math.ceil}


def _evaluate(expr: str) -> Fraction:
    """A filled-in formula as printed (⌊⌋ ⌈⌉ · × − and thousands separators), evaluated exactly; only
    numbers, + − · /, parentheses, floor and ceiling are accepted."""
    text = expr.replace("⌊", "floor(").replace("⌋", ")").replace("⌈", "ceil(").replace("⌉", ")")
    text = text.replace("·", "*").replace("×", "*").replace("−", "-")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return Fraction(str(node.value))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS:
            (arg,) = node.args
            return Fraction(_CALLS[node.func.id](ev(arg)))
        raise ValueError(f"not arithmetic: {ast.dump(node)}")

    return ev(ast.parse(text, mode="eval"))


def _check_line(line) -> None:
    """Every side of ``a = b = value`` equals the line's value."""
    *sides, shown = [s.strip() for s in line.filled.split(" = ")]
    assert _evaluate(shown) == Fraction(str(line.value)), line.filled
    for side in sides:
        assert _evaluate(side) == Fraction(str(line.value)), f"{line.filled}: {side}"


def _figure(e):
    v = e.value
    if e.field == "receptive_field":
        return v["size"] if isinstance(v["size"], (int, float)) else v["size"][-1]
    return v


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_every_formula_evaluates_to_the_analyzers_figure(name):
    s = cnnzoo.summary(name)
    for e in s.explain():
        row = s.layer(e.layer)
        assert e.value == (
            row.receptive_field.to_dict() if e.field == "receptive_field" else getattr(row, e.field)
        )
        for line in e.lines:
            _check_line(line)
        if not e.lines:
            continue
        if e.field == "output_shape":  # the H (and W) lines end in the map's height (and width)
            assert e.lines[0].value == row.output_shape[-2 if len(row.output_shape) == 3 else -1]
            assert e.lines[-1].value == row.output_shape[-1]
        elif e.field == "receptive_field":
            assert e.lines[-1].value == _figure(e)
        else:
            assert e.lines[-1].value == e.value, (e.layer, e.field)
    for b in s.blocks:
        for field in ("params", "macs", "flops", "connections"):
            e = s.explain(b.name, field)
            assert e.value == getattr(b, field)
            for line in e.lines:
                _check_line(line)


def test_lenet5_c3_is_table_one():
    e = cnnzoo.summary("lenet5").explain("c3", "params")
    assert e.lines[-1].filled == "6·(3·25+1) + 9·(4·25+1) + 1·(6·25+1) = 1,516"
    assert "Table I" in e.source
    assert cnnzoo.summary("lenet5_modern").explain("features.conv2", "params").lines[-1].filled == (
        "(5·5·6 + 1)·16 = 2,416"
    )


def test_alexnet_conv1_output_size():
    e = cnnzoo.summary("alexnet_ng").explain("features.0", "output_shape")
    assert e.lines[0].filled == "⌊(227 − 11 + 2·0)/4⌋ + 1 = (227 − 11)/4 + 1 = 55"
    assert e.value == [96, 55, 55]


def test_vgg16_receptive_field_reaches_212_at_pool5():
    e = cnnzoo.summary("vgg16").explain("features.30", "receptive_field")
    assert e.lines[-1].value == 212 and e.lines[-1].filled.endswith("= 212")
    steps = [ln for ln in e.lines if ln.formula.startswith("r = r_prev")]
    assert len(steps) == 18  # 13 convs and 5 pools
    assert steps[0].filled == "1 + (3 − 1)·1 = 3" and steps[-1].filled == "196 + (2 − 1)·16 = 212"


def test_chinese_uses_the_seeds_terms():
    s = cnnzoo.summary("lenet5")
    zh = s.explain("c3", "params", lang="zh")
    en = s.explain("c3", "params")
    assert zh.lines[-1].filled == en.lines[-1].filled
    assert "参数" in str(zh) and "表 I" in zh.source
    assert "感受野" in str(s.explain("c3", "receptive_field", lang="zh"))
    assert "步幅" in str(s.explain("c1", "output_shape", lang="zh"))
    # seed 003: a pooling window is a 池化核, a convolution's a 卷积核; the jump is 跳距
    modern = cnnzoo.summary("lenet5_modern")
    pool = str(modern.explain("features.pool1", "output_shape", lang="zh"))
    assert "池化核 2" in pool and "卷积核" not in pool
    assert "卷积核 5" in str(modern.explain("features.conv1", "output_shape", lang="zh"))
    rf = str(modern.explain("features.conv2", "receptive_field", lang="zh"))
    assert "features.pool1：池化核 2" in rf and "features.conv1：卷积核 5" in rf and "跳距" in rf
    assert "步长" not in rf
    # seed 003: a pooling window is a 池化核, a convolution's kernel a 卷积核
    assert "k = 池化核 2" in str(s.explain("s2", "output_shape", lang="zh"))
    assert "k = 卷积核 5" in str(s.explain("c1", "output_shape", lang="zh"))
    assert "池化核 3" in str(cnnzoo.summary("alexnet").explain("features.2", "receptive_field", lang="zh"))


def test_ceil_mode_dilation_and_same_padding():
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, dilation=2), nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(4, 4, 5, padding="same")
    )
    s = cnnzoo.summary(model, (1, 12, 12))
    assert s.explain("0", "output_shape").lines[0].filled == "⌊(12 − (2·(3 − 1) + 1) + 2·0)/1⌋ + 1 = 8"
    assert s.explain("1", "output_shape").lines[0].filled == "⌈(8 − 2 + 2·0)/2⌉ + 1 = 4"
    assert s.explain("2", "output_shape").lines[0].value == 4
    for e in s.explain():
        for line in e.lines:
            _check_line(line)


def test_bottleneck_block_shows_the_1x1_saving():
    s = cnnzoo.summary("inception_bottleneck_5x5")
    e = s.explain("block", "macs")
    assert e.lines[0].filled == "2,408,448 + 10,035,200 = 12,443,648"
    assert e.lines[1].filled == "5·5·192·32·28·28 = 120,422,400"
    assert "9.7×" in e.note


def test_unknown_layer_and_field_are_one_line_errors(capsys):
    from cnnzoo.cli import main

    assert main(["explain", "lenet5", "c9"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()  # one line, naming every valid layer
    assert err.startswith("cnnzoo explain: error: no layer or block 'c9' in lenet5; its layers: c1, ")
    for name in (
        "c1",
        "s2",
        "c3",
        "s4",
        "c5",
        "f6",
        "output",
    ):  # LeCun et al. 1998's names for LeNet-5's layers
        assert f" {name}," in err or err.endswith(f" {name}")
    assert main(["explain", "lenett"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as e:  # argparse's usage error: one line, exit 2
        main(["explain", "lenet5", "--field", "weight"])
    assert e.value.code == 2
    assert "invalid choice: 'weight'" in capsys.readouterr().err


def test_cli_examples(capsys):
    from cnnzoo.cli import main

    assert main(["explain", "lenet5", "c3"]) == 0
    out = capsys.readouterr().out
    assert "6·(3·25+1) + 9·(4·25+1) + 1·(6·25+1) = 1,516" in out
    assert main(["explain", "alexnet_ng", "--field", "output_shape"]) == 0
    out = capsys.readouterr().out
    assert "features.0" in out and "(227 − 11)/4 + 1 = 55" in out
    assert main(["explain", "vgg16", "--field", "receptive_field"]) == 0
    out = capsys.readouterr().out
    assert any(line.startswith("features.30") and line.endswith("= 212") for line in out.splitlines())
    assert main(["explain", "lenet5", "c3", "--lang", "zh"]) == 0
    assert "参数" in capsys.readouterr().out
    assert main(["explain", "lenet5", "c3", "--field", "params", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["value"] == 1516
    assert main(["explain", "lenet5", "c1", "--format", "markdown"]) == 0
    assert capsys.readouterr().out.startswith("| layer |")


@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    from cnnzoo.card import ModelCard
    from cnnzoo.web import Session, create_app

    meta = {
        "model": "lenet5",
        "input_size": [1, 32, 32],
        "dataset": "mnist",
        "classes": [str(i) for i in range(10)],
        "mean": [0.1307],
        "std": [0.3081],
    }
    return TestClient(create_app(Session(cnnzoo.create_model("lenet5").eval(), ModelCard(**meta), "test")))


@pytest.mark.parametrize("field", FIELDS)
def test_http_api(client, field):
    r = client.get("/api/explain/lenet5", params={"layer": "c3", "field": field, "lang": "zh"})
    assert r.status_code == 200, r.text
    (e,) = r.json()["explanations"]
    assert e["layer"] == "c3" and e["field"] == field and e["lang"] == "zh"
    if field == "params":
        assert e["lines"][-1]["filled"].endswith("= 1,516")


def test_http_api_errors(client):
    r = client.get("/api/explain/lenett")
    assert r.status_code == 404 and "lenet5" in r.json()["error"]
    assert client.get("/api/explain/lenet5", params={"layer": "zz"}).status_code == 400
    assert client.get("/api/explain/lenet5", params={"input": "abc"}).status_code == 422
    assert client.get("/api/explain/lenet5", params={"input": "1x16x16"}).status_code == 422
    assert client.get("/api/explain/lenet5", params={"lang": "fr"}).status_code == 422
    r = client.get("/api/explain/lenet5", params={"input": "1x32x32"})
    assert len(r.json()["explanations"]) == len(FIELDS) * len(cnnzoo.summary("lenet5").layers)


def _cli_out(capsys, *args: str) -> str:
    from cnnzoo.cli import main

    assert main(["explain", *args]) == 0
    return capsys.readouterr().out


def test_the_floor_step_is_shown(capsys):
    """torchvision's AlexNet conv1: 11×11, stride 4, padding 2 on 224: ⌊217/4⌋ + 1 = ⌊54.25⌋ + 1 = 55."""
    conv = torchvision.models.alexnet().features[0]
    n, k, s, p = 224, conv.kernel_size[0], conv.stride[0], conv.padding[0]
    span = n - k + 2 * p
    out = _cli_out(capsys, "alexnet", "features.0", "--field", "output_shape")
    assert f"⌊({n} − {k} + 2·{p})/{s}⌋ + 1 = ⌊{span}/{s}⌋ + 1 = ⌊{span / s:.2f}⌋ + 1 = {span // s + 1}" in out
    zh = _cli_out(capsys, "alexnet", "features.0", "--field", "output_shape", "--lang", "zh")
    assert f"⌊{span}/{s}⌋ + 1 = ⌊{span / s:.2f}⌋ + 1" in zh


def test_the_rbf_centres_are_explained_as_fixed(capsys):
    """LeCun et al. 1998 (Sec. II-B, Fig. 3): the output RBF's parameter vectors are fixed, not learnt."""
    out = _cli_out(capsys, "lenet5", "output", "--field", "params")
    assert "84·10 = 840" in out and "fixed, not trained" in out and "0 of the 840 are trainable" in out
    assert "weights and biases" not in out
    zh = _cli_out(capsys, "lenet5", "output", "--field", "params", "--lang", "zh")
    assert "不参与训练" in zh and "权重与偏置" not in zh
    model = cnnzoo.create_model("lenet5")
    assert not any(p.requires_grad for p in model.output.parameters())


def test_the_residual_add_names_its_two_tensors(capsys):
    """Seed 000: a[l+2] = g(z[l+2] + a[l]); the rows named are torchvision's resnet18 modules."""
    names = dict(torchvision.models.resnet18().named_modules())
    out = _cli_out(capsys, "resnet18", "layer2.0.add", "--field", "output_shape")
    assert "z[l+2] + a[l]" in out and "a[l+2] = g(z[l+2] + a[l])" in out
    assert "(layer1.1.relu#2's output)" in out and "layer1.1.relu" in names  # the block's input a[l]
    assert "through layer2.0.downsample.0, layer2.0.downsample.1" in out  # the projection shortcut
    assert "(layer2.0.bn2's output)" in out and isinstance(names["layer2.0.bn2"], torch.nn.BatchNorm2d)
    zh = _cli_out(capsys, "resnet18", "layer2.0.add", "--field", "output_shape", "--lang", "zh")
    assert "z[l+2] + a[l]" in zh and "跳跃连接" in zh
    bottleneck = _cli_out(capsys, "resnet50", "layer1.0.add", "--field", "output_shape")
    assert "a[l+3] = g(z[l+3] + a[l])" in bottleneck and "(layer1.0.bn3's output)" in bottleneck


UNGROUPED = re.compile(r"(?<![\d,.])\d{4,}")  # four or more digits without a thousands separator


@pytest.mark.parametrize("name", ["vgg16", "alexnet", "resnet50", "lenet5"])
def test_every_number_in_a_formula_is_grouped(name):
    fc = torchvision.models.vgg16().classifier[0]
    assert (fc.in_features, fc.out_features) == (25_088, 4_096)
    s = cnnzoo.summary(name)
    for e in s.explain():
        for line in e.lines:
            assert not UNGROUPED.search(line.filled), f"{e.layer} {e.field}: {line.filled}"
    if name == "vgg16":
        assert "(25,088 + 1)·4,096" in s.explain("classifier.0", "params").lines[0].filled
