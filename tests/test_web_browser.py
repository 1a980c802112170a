"""End to end in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright): a real uvicorn
server on a free loopback port serves a briefly trained LeNet; the test draws a stroke with mouse events,
waits for the prediction and the feature maps, and checks the explorer renders VGG-16's table and diagram.
Screenshots are saved in the test's temporary directory; ``CNNZOO_SCREENSHOTS=docs`` writes them to
docs/img/web-predict.png and docs/img/web-explore.png instead (how the docs' pictures are made).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A uvicorn server in a thread, on a free port of 127.0.0.1, serving a freshly trained checkpoint."""
    from helpers import serving
    from webclient import FASHION, train_fashion_run

    from cnnzoo.web import create_app, load_session

    if not FASHION.is_dir():
        pytest.skip("Fashion-MNIST not at /usr/share/datasets")
    run = train_fashion_run(tmp_path_factory.mktemp("runs") / "fashion-lenet")
    with serving(create_app(load_session(run))) as url:
        yield url


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Console errors fail the test (CSP violations, failed requests), except the 422 that the explorer's
    # too-small input is meant to get.
    page.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "status of 422" not in m.text else None,
    )
    yield page
    page.close()
    assert not errors, f"browser errors: {errors}"  # includes CSP violations and failed requests


def shot_path(name: str, tmp_path: Path) -> Path:
    """Screenshots go to the test's temporary directory; CNNZOO_SCREENSHOTS=docs refreshes docs/img."""
    if os.environ.get("CNNZOO_SCREENSHOTS") != "docs":
        return tmp_path / name
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    return DOCS_IMG / name


def test_draw_and_predict(server, page, tmp_path):
    from playwright.sync_api import expect

    page.goto(server + "/")
    expect(page.locator("#gallery button")).to_have_count(30)  # the test images loaded
    expect(page.locator("#banner")).to_be_hidden()  # a trained checkpoint: no warning
    box = page.locator("#pad").bounding_box()

    def at(fx, fy):
        return box["x"] + box["width"] * fx, box["y"] + box["height"] * fy

    # A pair of trousers, drawn with real mouse events and the widest brush: a waistband, then two legs.
    page.locator("#brush").fill("40")
    strokes = [
        ((0.36, 0.1), (0.64, 0.1)),
        ((0.38, 0.1), (0.36, 0.92)),
        ((0.62, 0.1), (0.64, 0.92)),
        ((0.42, 0.1), (0.41, 0.5)),
        ((0.58, 0.1), (0.59, 0.5)),
    ]
    for (x0, y0), (x1, y1) in strokes:
        page.mouse.move(*at(x0, y0))
        page.mouse.down()
        for i in range(1, 21):
            page.mouse.move(*at(x0 + (x1 - x0) * i / 20, y0 + (y1 - y0) * i / 20))
        page.mouse.up()

    expect(page.get_by_test_id("prediction")).to_have_text(re.compile(r"\S+"))
    from webclient import FASHION_CLASSES

    assert page.get_by_test_id("prediction").text_content() in FASHION_CLASSES
    expect(page.locator("#probs li")).to_have_count(10)
    expect(page.locator("#seen")).to_have_attribute("src", re.compile("^data:image/png;base64,"))
    expect(page.locator("#seen-note")).to_contain_text("inverted")  # black on white -> light on dark
    # every layer's maps: conv1 6 maps, pool1 6, conv2 16, pool2 16, then fc1/fc2/fc_out as one grid each
    expect(page.locator("#layers .layer")).to_have_count(7)
    expect(page.locator("#layers .layer").first.locator("canvas")).to_have_count(6)
    page.wait_for_timeout(300)  # let the last live update land before the picture
    page.screenshot(path=str(shot_path("web-predict.png", tmp_path)), full_page=True)

    # a gallery image (already light on dark) is classified too, without inversion
    page.locator("#gallery button").nth(0).click()
    expect(page.locator("#seen-note")).to_contain_text("not inverted")


def test_explorer_renders_vgg16(server, page, tmp_path):
    from playwright.sync_api import expect

    from cnnzoo.models import list_models

    name = "vgg16" if "vgg16" in list_models() else "lenet5"
    page.goto(f"{server}/explore?model={name}")
    rows = page.locator("#rows tr")
    if name == "vgg16":
        expect(page.get_by_test_id("totals")).to_contain_text("138,357,544")  # REFERENCE.md, VGG D
        expect(rows.filter(has_text="Conv2d")).to_have_count(13)
        boxes = 1 + 13 + 5 + 1 + 3  # input, 13 convs, 5 max pools, the adaptive avg pool, 3 FCs
        expect(page.locator("#diagram svg g")).to_have_count(boxes)
    else:
        expect(page.get_by_test_id("totals")).to_contain_text("60,000")
    page.screenshot(path=str(shot_path("web-explore.png", tmp_path)), full_page=True)

    # a too-small input shows the analyzer's message instead of a table
    page.get_by_test_id("input").fill("3x16x16")
    page.get_by_role("button", name="Analyze").click()
    expect(page.get_by_test_id("error")).to_contain_text("too small")
    expect(rows).to_have_count(0)


def test_draw_with_a_finger(server, browser):
    """Touch input (Pointer Events with pointerType "touch", from real touch events via the DevTools
    protocol): the stroke draws and predicts, and the page does not scroll under the finger."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 400, "height": 800}, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.goto(server + "/")
    pad = page.locator("#pad")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    cdp = context.new_cdp_session(page)
    points = [
        (box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.15 + 0.035 * i)) for i in range(21)
    ]
    cdp.send(
        "Input.dispatchTouchEvent",
        {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]},
    )
    for x, y in points[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    expect(page.get_by_test_id("prediction")).not_to_be_empty()
    assert pad.bounding_box()["y"] == box["y"]  # the finger drew; it did not scroll the page
    context.close()
