"""The Build page's API: a layer string's table, its tokens and, for a net that does not work, why, checked
against torch's own modules (the counts, and which inputs a net runs on) rather than our own figures; every
error the grammar can raise has its code, its values and its message in Chinese with the same token and
numbers (cnnzoo.models.layererrors.MESSAGES)."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from helpers import i18n_strings
from torch import nn

from cnnzoo.models.layererrors import MESSAGES

SEED_004 = "1x28x28-32C3-MP2-64C3-MP2-128C3-MP2-64N-10N"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from cnnzoo.web import create_app, load_session

    app = create_app(load_session(None, tmp_path_factory.mktemp("runs")))
    return TestClient(app)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_check_counts_seed_004_as_torch_does(client):
    r = client.get("/api/build/check", params={"net": SEED_004})
    assert r.status_code == 200 and "analyze;dur=" in r.headers["server-timing"]
    body = r.json()
    torch_net = nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128, 64),
        nn.Linear(64, 10),
    )
    assert body["ok"] and body["summary"]["total"]["params"] == params(torch_net) == 101_578
    # one entry per token of the text, in order, with its span and the table rows it makes
    tokens = body["tokens"]
    assert [SEED_004[a:b] for a, b in (t["span"] for t in tokens)] == SEED_004.split("-")[1:]
    assert tokens[0]["rows"] == ["conv1", "relu1"] and tokens[0]["kernel"] == 3
    names = {row["name"] for row in body["summary"]["layers"]}
    assert {n for t in tokens for n in t["rows"]} <= names


def test_input_replaces_the_strings(client):
    body = client.get("/api/build/check", params={"net": SEED_004, "input": "3x32x32"}).json()
    assert body["ok"] and body["input"] == [3, 32, 32] and body["net"].startswith("3x32x32-32C3")


def smallest_side(net: nn.Module) -> int:
    for side in range(1, 300):
        try:
            net(torch.zeros(1, 1, side, side))
        except RuntimeError:
            continue
        return side
    raise AssertionError("no side works")


def test_a_collapse_names_the_layer_the_formula_and_the_smallest_input(client):
    text = "1x28x28-32C5-MP2-64C5-MP2-128C5-MP2-64N-10N"
    body = client.get("/api/build/check", params={"net": text}).json()
    assert body["ok"] is False
    e = body["error"]
    assert text[e["position"] : e["position"] + e["length"]] == "128C5"
    convs = nn.Sequential(nn.Conv2d(1, 32, 5), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5), nn.MaxPool2d(2))
    side = convs(torch.zeros(1, 1, 28, 28)).shape[-1]  # what conv3 gets: 4
    with pytest.raises(RuntimeError):
        nn.Conv2d(64, 128, 5)(torch.zeros(1, 64, side, side))
    assert e["collapse"]["layer"] == "conv3" and e["collapse"]["input_side"] == side
    assert e["collapse"]["formula"].endswith(f"⌊({side} + 2·0 − 1·(5 − 1) − 1)/1⌋ + 1 = 0")
    whole = nn.Sequential(*convs, nn.Conv2d(64, 128, 5), nn.MaxPool2d(2))
    n = smallest_side(whole)
    assert e["collapse"]["smallest_input"] == f"1x{n}x{n}"


@pytest.mark.parametrize(
    "net, cap",
    [
        ("3x1024x1024-4096C3p1*4-10N", "MAX_FEATURE_ELEMENTS"),
        ("1x28x28-16384N-16384N-10N", "MAX_PARAMS"),
        ("1x28x28-" + "-".join(["8C3p1"] * 301) + "-10N", "MAX_LAYERS"),
    ],
)
def test_caps_are_one_line_naming_the_cap(client, net, cap):
    body = client.get("/api/build/check", params={"net": net}).json()
    assert body["ok"] is False and cap in body["error"]["reason"] and "\n" not in body["error"]["reason"]


def test_a_string_is_never_executed(client):
    body = client.get("/api/build/check", params={"net": "1x28x28-__import__('os').system('true')"}).json()
    assert body["ok"] is False and "unknown layer" in body["error"]["reason"]


def test_explain_takes_a_layer_string(client):
    r = client.get(
        f"/api/explain/{SEED_004.replace('32C3', '32C5')}", params={"layer": "conv1", "field": "params"}
    )
    assert r.status_code == 200, r.json()
    line = r.json()["explanations"][0]["lines"][0]
    assert line["filled"] == f"(5·5·1 + 1)·32 = {params(nn.Conv2d(1, 32, 5))}"


def test_starts_offer_the_seeds_and_zoo_nets_that_read_back(client):
    nets = client.get("/api/build/starts").json()["nets"]
    assert {n["group"] for n in nets} == {"empty", "seed", "zoo"}
    for n in nets:
        assert client.get("/api/build/check", params={"net": n["net"]}).json()["ok"], n


def test_train_start_refuses_a_bad_layer_string_in_one_line(client):
    from webclient import FASHION

    if not FASHION.is_dir():
        pytest.skip("Fashion-MNIST not at /usr/share/datasets")
    r = client.post("/api/train/start", data={"model": "1x28x28-32C3-10X", "dataset": "fashion-mnist"})
    assert r.status_code == 422
    err = r.json()["error"]
    assert "\n" not in err and "unknown layer '10X'" in err


# One way to meet each error the layer-string code can raise: a string the Build page can send, or (for the
# few it cannot) the call that raises it.
def _raises(code: str):
    from cnnzoo.models.layergrammar import LayerSpec
    from cnnzoo.models.layershapes import infer
    from cnnzoo.models.layerstring import build_layer_string, parse_layer_string, to_layer_string
    from cnnzoo.web.build_api import with_input

    def net(n: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 4, 3, bias=n == 1), *[nn.BatchNorm2d(4)] * n, nn.Flatten())

    calls = {
        "not_text": lambda: parse_layer_string(5),
        "input_size": lambda: with_input(SEED_004, "1x28"),
        "dropout_range": lambda: infer((1, 28, 28), [LayerSpec("drop", p=1.5, span=(8, 12))], "1x28x28-D1.5"),
        "num_classes_needs_fc": lambda: build_layer_string("1x28x28-GAP", num_classes=5),
        "no_token": lambda: to_layer_string(nn.Sequential(nn.LSTM(3, 3)), input_size=(1, 28, 28)),
        "bias_before_bn": lambda: to_layer_string(net(1), input_size=(1, 28, 28)),
        "no_bias_no_bn": lambda: to_layer_string(net(0), input_size=(1, 28, 28)),
    }
    return calls.get(code) or (lambda: parse_layer_string(BAD[code]))


BAD = {  # code -> a string that the Build page may send and that raises it
    "too_long": "1x28x28" + "-BN" * 700,
    "input_first": "28x28-10N",
    "input_range": "1x2000x28-10N",
    "no_layers": "1x28x28",
    "empty_layer": "1x28x28--10N",
    "unknown_layer": "1x28x28-32C3-MQ2-10N",
    "unknown_option": "1x28x28-32C3z2-10N",
    "option_twice": "1x28x28-32C3s2p1s1-10N",
    "bad_repeat": "1x28x28-MP2*999",
    "too_many_layers": "1x28x28" + "-BN*64" * 6,
    "too_many_layers_with_activations": "1x28x28" + "-8C3p1*60" * 5,
    "needs_maps": "1x28x28-10N-MP2",
    "width_range": "1x28x28-20000N",
    "conv_at_least_1": "1x28x28-8C0-10N",
    "groups_divide": "1x28x28-8C3g3-10N",
    "conv_collapse": "1x28x28-8C30-10N",
    "pool_at_least_1": "1x28x28-MP0",
    "pool_padding": "1x28x28-MP2p2",
    "pool_collapse": "1x28x28-MP30",
    "res_stride": "1x28x28-R8s0",
    "shortcut_a": "1x28x28-8C3-R2A-10N",
    "too_many_values": "3x1024x1024-4096C3p1-10N",
    "too_many_params": "3x224x224-16384N-16384N",
    "too_many_macs": "3x512x512-256C3p1*2-GAP-10N",
}
SRC = Path(__file__).resolve().parents[1] / "src" / "cnnzoo"


def test_every_error_is_made_from_the_table():
    made = set()  # every code written in the source where an error is made
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        made |= set(re.findall(r"(?:layer_error|fail)\(\s*\"(\w+)\"", text))
        if path.name not in ("errors.py", "layererrors.py"):  # no message written outside the table
            assert "LayerStringError(" not in text, path
    assert made and made <= set(MESSAGES)


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_every_error_has_its_chinese_message_with_the_same_token_and_numbers(code):
    from cnnzoo.errors import LayerStringError
    from cnnzoo.models.layererrors import reasons

    with pytest.raises(LayerStringError) as info:
        _raises(code)()
    e = info.value
    assert e.code == code
    both = reasons(e)
    assert both["en"] == e.reason and set(both) == {"en", "zh"} and MESSAGES[code]["zh"]
    zh = both["zh"]
    assert re.search(r"[\u4e00-\u9fff]", zh)
    # the same information: every number the English gives (grouped as it groups them) and the token
    numbers = Counter(re.findall(r"\d[\d,]*", zh))
    assert not Counter(re.findall(r"\d[\d,]*", e.reason)) - numbers, zh
    for v in e.values.values():
        if isinstance(v, str) and repr(v) in e.reason:
            assert repr(v) in zh
    # no English word: what is left is the values, the caps' names and the grammar's own tokens
    rest = zh
    for v in e.values.values():
        rest = rest.replace(str(v), " ")
    rest = re.sub(r"MAX_\w+|num_classes|\b(kCs|MPs|APs|GAP|GMP|kN|BN|Dp|Rk)\b", " ", rest)
    assert not re.search(r"[A-Za-z]{2,}", rest), rest


def test_an_error_answers_its_code_values_and_both_languages(client):
    text = "1x28x28-32C3-MQ2-64N-10N"
    e = client.get("/api/build/check", params={"net": text}).json()["error"]
    assert (e["code"], e["values"]) == ("unknown_layer", {"token": "MQ2"})
    assert text[e["position"] : e["position"] + e["length"]] == "MQ2"
    assert e["reasons"]["en"] == e["reason"] and e["message"] == f"{text}  <- {e['reason']}"
    assert e["reasons"]["zh"].startswith("未知的层 'MQ2'：应为 kCs（卷积层）、MPs/APs（池化层）")
    collapse = client.get(
        "/api/build/check", params={"net": "1x28x28-32C5-MP2-64C5-MP2-128C5-MP2-10N"}
    ).json()
    assert collapse["error"]["values"] == {"h": 4, "w": 4}  # conv3's input, as torch computed above
    assert collapse["error"]["reasons"]["zh"] == "4×4 的特征图对这个卷积核太小（特征图会坍缩）"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_messages_name_the_kinds_and_fields_as_the_page_does(tmp_path):
    from cnnzoo.models.layererrors import FIELD_NAMES, KIND_NAMES

    page = i18n_strings(tmp_path)["zh"]
    assert {k: page[f"build.kind.{k}"] for k in KIND_NAMES["zh"]} == KIND_NAMES["zh"]
    assert {f: page[f"build.f.{f}"] for f in FIELD_NAMES["zh"]} == FIELD_NAMES["zh"]
