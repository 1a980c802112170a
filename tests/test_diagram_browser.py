"""The diagram draws the real graph (a real headless Chromium; the fixtures of test_web_browser.py): ResNet-18
in the explorer has one shortcut per residual block (8, torchvision's ``BasicBlock`` count: [2, 2, 2, 2]), the
three projections sit on their shortcut rather than in series, and no two labels overlap."""

from __future__ import annotations

import pytest
from test_web_browser import page, server, shot_path  # noqa: F401 (fixtures; `browser` is conftest's)


def overlapping(boxes: list[dict]) -> list[tuple[str, str]]:
    """Pairs of label boxes (x, y, width, height, text) whose areas intersect."""
    hits = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if (
                a["x"] < b["x"] + b["width"]
                and b["x"] < a["x"] + a["width"]
                and a["y"] < b["y"] + b["height"]
                and b["y"] < a["y"] + a["height"]
            ):
                hits.append((a["text"], b["text"]))
    return hits


LABELS = """els => els.map(e => { const r = e.getBoundingClientRect();
  return {x: r.x, y: r.y, width: r.width, height: r.height, text: e.textContent}; })"""


@pytest.mark.parametrize("model, skips", [("resnet18", 8), ("resnet50", 16)])
def test_resnet_diagram_draws_its_shortcuts(server, page, model, skips, tmp_path):  # noqa: F811
    import torchvision
    from playwright.sync_api import expect

    tv = getattr(torchvision.models, model)()
    blocks = sum(len(getattr(tv, f"layer{i}")) for i in range(1, 5))
    assert blocks == skips
    page.goto(f"{server}/explore?model={model}&input=3x224x224&lang=en")
    skip = page.get_by_test_id("skip")
    expect(skip).to_have_count(skips)
    projections = sum(1 for i in range(1, 5) if getattr(tv, f"layer{i}")[0].downsample is not None)
    on_arc = page.locator('[data-testid="skip"] g[data-layer$="downsample.0"]')
    expect(on_arc).to_have_count(projections)
    # in series there is no box for the projection: it is drawn on the shortcut only
    assert page.locator('#diagram svg > g[data-layer*="downsample"]').count() == 0
    labels = page.locator("#diagram text.label").evaluate_all(LABELS)
    assert len(labels) > 3 * blocks
    assert overlapping(labels) == []
    if model == "resnet18":
        page.get_by_test_id("diagram").screenshot(path=str(shot_path("diagram-resnet18.png", tmp_path)))


def test_overlap_check_finds_an_overlap():
    a = {"x": 0, "y": 0, "width": 10, "height": 10, "text": "a"}
    assert overlapping([a, {**a, "x": 5, "text": "b"}]) == [("a", "b")]
    assert overlapping([a, {**a, "x": 10, "text": "b"}]) == []
