"""The Train page end to end in real headless Chromium: start lenet5_modern on 6,000 Fashion-MNIST images for
2 epochs, watch the epoch counter, the curves and conv1's filters change, use the result on the predict page,
then restart the server and scrub the finished run with the replay slider. Any browser console error (a CSP
violation, a failed request) fails the test. ``CNNZOO_SCREENSHOTS=docs`` writes docs/img/train-page.png.
"""

from __future__ import annotations

import json
import re
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_web_browser import CHROMIUM, shot_path  # its `browser` fixture is shared through conftest.py
from webclient import FASHION, FASHION_CLASSES

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not at /usr/share/datasets"),
]
FASHION_CLASSES_RE = re.compile("^(" + "|".join(map(re.escape, FASHION_CLASSES)) + ")$")


@contextmanager
def serving(runs: Path):
    """A real uvicorn server on a free loopback port, with an untrained LeNet and ``runs`` as its runs folder."""
    from helpers import serving as serving_app

    from cnnzoo.web import create_app, load_session

    app = create_app(load_session(None, runs))
    app.state.runs_dir = str(runs)
    with serving_app(app) as url:
        yield url


def open_page(browser, errors: list):
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page


def canvas_png(page, testid: str) -> str:
    return page.get_by_test_id(testid).evaluate("c => c.toDataURL()")


@pytest.mark.slow
def test_train_watch_use_and_replay(browser, tmp_path):
    from playwright.sync_api import expect

    runs, errors = tmp_path / "runs", []
    runs.mkdir()
    with serving(runs) as url:
        page = open_page(browser, errors)
        page.goto(url + "/train")
        page.select_option("select[name=model]", "lenet5_modern")
        page.select_option("select[name=dataset]", "fashion-mnist")
        page.fill("input[name=epochs]", "2")
        page.fill("input[name=limit]", "6000")
        page.get_by_test_id("train-start").click()
        epoch = page.get_by_test_id("train-epoch")
        expect(epoch).to_have_text(re.compile(r"[12]/2"), timeout=60_000)  # a fast epoch may skip 1/2
        # epoch 1's snapshot drawn (or, on a fast machine, already epoch 2's: the point is a trained one)
        expect(page.get_by_test_id("train-filters")).to_have_attribute(
            "data-epoch", re.compile("[12]"), timeout=30_000
        )
        curves1, filters1 = canvas_png(page, "train-curves"), canvas_png(page, "train-filters")
        shown1 = page.get_by_test_id("train-filters").get_attribute("data-epoch")
        expect(epoch).to_have_text("2/2", timeout=60_000)
        expect(page.get_by_test_id("train-use")).to_be_enabled(timeout=30_000)
        expect(page.get_by_test_id("train-filters")).to_have_attribute("data-epoch", "2", timeout=30_000)
        curves2, filters2 = canvas_png(page, "train-curves"), canvas_png(page, "train-filters")
        blank = page.evaluate(
            "() => { const c = document.createElement('canvas'); c.width = c.height = 1; "
            "return c.toDataURL(); }"
        )
        assert filters1 != blank and len(curves1) > 2000  # drawn
        # changed between the epochs, unless the first look already found epoch 2 (the replay below compares
        # epochs 0 and 2 in any case)
        assert shown1 == "2" or (curves2 != curves1 and filters2 != filters1)
        expect(page.locator("#maps img")).to_have_count(8)  # the input and lenet5_modern's 7 layers
        expect(page.locator("#confusion td")).to_have_count(100)
        page.screenshot(path=str(shot_path("train-page.png", tmp_path)), full_page=True)

        page.get_by_test_id("train-use").click()
        expect(page.locator("#use-note")).to_contain_text("now serves lenet5_modern")
        run_id = page.locator("#run-id").text_content()
        info = json.load(urllib.request.urlopen(url + "/api/info"))
        assert info["source"] == str(runs / run_id) and info["warning"] is None

        page.goto(url + "/")  # the predict page classifies a drawing with the new model
        expect(page.locator("#banner")).to_be_hidden()
        box = page.locator("#pad").bounding_box()
        page.locator("#brush").fill("40")
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.1)
        page.mouse.down()
        for i in range(1, 21):
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.1 + 0.8 * i / 20))
        page.mouse.up()
        expect(page.get_by_test_id("prediction")).to_have_text(FASHION_CLASSES_RE)
        page.close()

    with serving(runs) as url:  # a new server: the finished run is replayed from its folder
        page = open_page(browser, errors)
        page.goto(url + "/train")
        expect(page.locator("#runs option")).to_have_count(1)
        expect(page.get_by_test_id("train-epoch")).to_have_text("2/2")
        slider = page.get_by_test_id("train-replay")
        expect(slider).to_have_attribute("max", "2")
        shown = {}
        for k in ("0", "2"):
            slider.fill(k)
            expect(page.locator("#slider-label")).to_contain_text(f"epoch {k}")
            page.wait_for_timeout(300)
            shown[k] = canvas_png(page, "train-filters")
        assert shown["0"] != shown["2"]  # the initial weights are not the trained ones
        page.close()
    assert not errors, f"browser errors: {errors}"
