"""The table of figures (:data:`cnnzoo.figures.FIGURES`) is the one place a figure of the layer table is
declared. Every figure in it has an explanation builder and a value in every row's JSON; and a figure added
to it (here: each layer's parameter memory, computed from its row) shows in the terminal, Markdown and CSV
tables, the JSON rows and totals, ``cnnzoo explain --field``, ``GET /api/figures`` and ``/api/explain``,
with nothing else changed. Its total is checked against torch's own ``numel() · element_size()``."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import cnnzoo
from cnnzoo import figures
from cnnzoo.analysis.explain_formulas import BUILDERS, Built, line
from cnnzoo.figures import FIGURES, Figure

PARAM_BYTES = Figure(
    "param_bytes",
    ("parameter memory (bytes)", "参数内存（字节）"),
    ("param bytes", "参数内存"),
    "bytes",
    total=("parameters, float32", "参数（float32）"),
    value=lambda row: 4 * row.params,
)


def _param_bytes(at) -> Built:
    return Built(
        (line("float32", "params·4", f"{at.row.params:,}·4", 4 * at.row.params),), "", "4 bytes each"
    )


@pytest.fixture
def param_bytes(monkeypatch):
    """The figure added to the table and its builder registered, for one test."""
    monkeypatch.setattr(figures, "FIGURES", (*FIGURES, PARAM_BYTES))
    monkeypatch.setitem(BUILDERS, PARAM_BYTES.key, _param_bytes)


def test_every_figure_has_a_builder_and_a_value_in_every_row():
    import cnnzoo.analysis.explain  # noqa: F401 (registers the builders it defines)

    assert set(BUILDERS) == {f.key for f in FIGURES}
    rows = cnnzoo.summary("resnet18", (3, 64, 64)).to_dict()["layers"]
    assert all(f.key in row for row in rows for f in FIGURES)
    assert {f.kind for f in FIGURES} <= set(figures.KINDS)


def test_an_unknown_figure_is_refused_by_name():
    with pytest.raises(cnnzoo.errors.CnnzooError, match="unknown figure 'weights': choose from output_shape"):
        figures.figure("weights")


def test_a_new_figure_reaches_every_table(param_bytes):
    s = cnnzoo.summary("lenet5")
    model = cnnzoo.create_model("lenet5")
    measured = sum(p.numel() * p.element_size() for p in model.parameters())  # torch's own count
    data = s.to_dict()
    assert data["total"]["param_bytes"] == measured
    assert sum(row["param_bytes"] for row in data["layers"]) == measured  # the rows add up to the total
    assert "param bytes" in s._repr_markdown_().splitlines()[2]  # the header row
    assert "param bytes" in str(s)
    from cnnzoo.analysis.render import to_csv

    rows = [r.split(",") for r in to_csv(s).splitlines()]
    c3 = next(r for r in rows if r[0] == "c3")
    assert c3[rows[0].index("param_bytes")] == str(4 * 1_516)  # LeNet-5's Table I: 1,516 weights and biases


def test_a_new_figure_is_explained_in_the_cli_and_the_api(param_bytes, capsys):
    from cnnzoo.cli import main
    from cnnzoo.web import create_app

    assert main(["explain", "lenet5", "c3", "--field", "param_bytes"]) == 0
    assert "1,516·4 = 6,064" in capsys.readouterr().out
    client = TestClient(create_app(None))
    table = client.get("/api/figures").json()
    assert table[-1]["key"] == "param_bytes" and table[-1]["heading"]["zh"] == "参数内存"
    r = client.get("/api/explain/lenet5", params={"layer": "c3", "field": "param_bytes", "lang": "zh"})
    assert r.status_code == 200, r.text
    (e,) = r.json()["explanations"]
    assert e["value"] == 6_064 and e["lines"][0]["filled"] == "1,516·4 = 6,064"
