"""cnnzoo compare, the papers' layer names, the notebook forms (_repr_html_ / _repr_markdown_) and the web API's
layer strings and /api/compare. Figures are checked against torchvision's published ones and the papers."""

from __future__ import annotations

import html.parser

import pytest
import torchvision
from fastapi.testclient import TestClient

import cnnzoo
from cnnzoo import cli
from cnnzoo.errors import CnnzooError

SEED_004 = "1x28x28-32C3-MP2-64C3-MP2-128C3-MP2-64N-10N"


def published(weights) -> int:
    return weights.DEFAULT.meta["num_params"]


def test_compare_vgg16_resnet18(capsys):
    assert cli.main(["compare", "vgg16", "resnet18"]) == 0
    out = capsys.readouterr().out
    vgg, resnet = published(torchvision.models.VGG16_Weights), published(torchvision.models.ResNet18_Weights)
    assert (vgg, resnet) == (138_357_544, 11_689_512)
    line = next(ln for ln in out.splitlines() if ln.startswith("parameters"))
    assert f"{vgg:,}" in line and f"{resnet:,} ({resnet / vgg:.3g}×)" in line  # side by side, with the ratio
    macs = next(ln for ln in out.splitlines() if ln.startswith("MACs"))
    gmacs = torchvision.models.VGG16_Weights.DEFAULT.meta["_ops"]  # torchvision's published GMACs
    assert f"{round(gmacs * 1e9):,}"[:6] in macs


def test_compare_in_chinese_and_as_json(capsys):
    result = cnnzoo.compare("lenet5_modern", SEED_004, lang="zh")
    assert "参数" in str(result) and "感受野" in str(result)
    assert result.rows["params"] == [61_706, 101_578]  # the registry's published count; seed 004's summary
    assert cli.main(["compare", "lenet5_modern", SEED_004, "--format", "json"]) == 0
    assert '"params": [\n      61706,\n      101578' in capsys.readouterr().out
    with pytest.raises(CnnzooError, match="2 to 8"):
        cnnzoo.compare("lenet5")


class _Tables(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def test_notebook_forms():
    s = cnnzoo.summary("lenet5")
    parser = _Tables()
    parser.feed(s._repr_html_())
    assert parser.tags[0] == "table" and parser.tags.count("tr") == len(s.layers) + 1
    assert s._repr_markdown_().count("\n| ") == len(s.layers) + 1
    assert str(s).count("c3 ") == 1  # the table once
    e = s.explain("C3", "params")  # the paper's name, in its case
    assert e.value == 1_516 and e._repr_html_().startswith("<pre>")  # LeCun et al. 1998, Table I
    assert "<table>" in cnnzoo.compare("lenet5", "lenet5_modern")._repr_html_()


@pytest.mark.parametrize(
    "model, alias, row",
    [
        ("vgg16", "conv1_1", "features.0"),
        ("vgg16", "conv5_3", "features.28"),  # torchvision's index of VGG-16's last conv
        ("vgg16", "fc8", "classifier.6"),
        ("alexnet", "conv5", "features.10"),
    ],
)
def test_paper_layer_names(model, alias, row):
    assert cnnzoo.summary(model).explain(alias, "params").layer == row


def test_resnet_stage_names():
    found = cnnzoo.summary("resnet18").explain("conv2_x", "params")
    assert [e.layer for e in found] == ["layer1.0", "layer1.1"]
    assert sum(e.value for e in found) == 2 * 2 * (64 * 64 * 9 + 128)  # He et al. Table 1: two [3×3, 64]×2


def test_web_takes_layer_strings_and_compares():
    from cnnzoo.web import create_app
    from cnnzoo.web.session import untrained_session

    c = TestClient(create_app(untrained_session()))
    assert c.get(f"/api/summary/{SEED_004}").json()["total"]["params"] == 101_578
    bad = c.get("/api/summary/1x28x28-32C3-Q")
    assert bad.status_code == 400 and bad.json()["error"].endswith("\n             ^")
    assert c.get("/api/summary/net.py:Net").status_code == 400  # never code over the web
    r = c.get("/api/compare", params={"models": ["vgg16", "resnet18"]}).json()
    assert r["rows"]["params"] == [138_357_544, 11_689_512]
    assert c.get("/api/compare", params={"models": ["vgg16", "torchvision:vgg16"]}).status_code == 400
