"""The Build page in a real headless Chromium (a real uvicorn; any console error fails a test): seed 004's Keras
CNN typed as a layer string has Keras's count (seed 004's summary: 320 + 18,496 + 73,856 + 8,256 + 650 =
101,578; the same net built in torch below), an edit updates it, a net that collapses is explained, the
controls rewrite the text, and ``?lang=zh`` is Chinese. ``CNNZOO_SCREENSHOTS=docs`` writes docs/img/build-*.png.
"""

from __future__ import annotations

import re

import pytest
import torch
from test_web_browser import page, server, shot_path  # noqa: F401 (fixtures; `browser` is conftest's)
from torch import nn

SEED_004 = "1x28x28-32C3-MP2-64C3-MP2-128C3-MP2-64N-10N"


def keras_cnn(kernel: int) -> nn.Module:
    """Seed 004's Keras model, written out in torch (valid convolutions, 2×2 max pools, Dense 64, Dense 10)."""
    convs = [
        nn.Conv2d(1, 32, kernel),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    ]
    flat = nn.Sequential(*convs)(torch.zeros(1, 1, 28, 28)).shape[1]
    return nn.Sequential(*convs, nn.Linear(flat, 64), nn.ReLU(), nn.Linear(64, 10))


def count(model: nn.Module) -> str:
    model(torch.zeros(1, 1, 28, 28))  # a LazyLinear learns its input size
    return f"{sum(p.numel() for p in model.parameters()):,}"


def test_seed_004_typed_edited_and_collapsed(server, page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    assert count(keras_cnn(3)) == "101,578"  # seed 004's table sums to this too
    page.goto(f"{server}/build?net={SEED_004}&lang=en")
    total = page.get_by_test_id("total-params")
    expect(total).to_have_text(count(keras_cnn(3)))
    box = page.get_by_test_id("net-string")
    box.fill(SEED_004.replace("32C3", "32C5"))
    expect(total).to_have_text(count(keras_cnn(5)))  # 102,090
    expect(page.get_by_test_id("net-diff")).to_contain_text("+512")
    expect(page.get_by_test_id("net-diff")).to_contain_text("conv1 k 3→5")
    expect(page).to_have_url(re.compile(r"net=1x28x28-32C5"))
    # only the changed cells were redrawn, and each stayed in its column: every row's figures in one order,
    # and the weighted rows' parameters are torch's for the edited net
    order = (
        "rows => rows.map(r => [...r.querySelectorAll('td[data-field]')].map(c => c.dataset.field).join())"
    )
    assert len(set(page.eval_on_selector_all("#rows tr", order))) == 1
    shown = page.eval_on_selector_all(
        '#rows td[data-field="params"]', "cells => cells.map(c => c.textContent)"
    )
    weighted = [m for m in keras_cnn(5) if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [p for p in shown if p != "0"] == [f"{sum(p.numel() for p in m.parameters()):,}" for m in weighted]
    # every figure is clickable for its formula, now for a typed net
    page.locator('td[data-layer="conv1"][data-field="params"]').click()
    expect(page.get_by_test_id("explanation")).to_contain_text("(5·5·1 + 1)·32 = 832")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shot_path("build-edit.png", tmp_path)), full_page=False)

    # seed 004's exercise taken further: all three kernels 5×5. conv3's input is then 4×4 (torch refuses it too)
    five = SEED_004.replace("C3", "C5")
    with pytest.raises(RuntimeError):
        keras_cnn5(padding=0)(torch.zeros(1, 1, 28, 28))
    box.fill(five)
    error = page.get_by_test_id("net-error")
    expect(error).to_be_visible()
    expect(page.get_by_test_id("net-error-token")).to_have_text("128C5")
    expect(error).to_contain_text("conv3")
    expect(error).to_contain_text("⌊(4 + 2·0 − 1·(5 − 1) − 1)/1⌋ + 1 = 0")
    side = next(s for s in range(1, 200) if _works(keras_cnn5(padding=0), s))
    expect(error).to_contain_text(f"1x{side}x{side}")  # 36
    page.screenshot(path=str(shot_path("build-error.png", tmp_path)), full_page=False)
    # 'same' padding (p2) keeps 28 → 14 → 7 → 3: it works again
    box.fill(five.replace("C5", "C5p2"))
    expect(error).to_be_hidden()
    expect(total).to_have_text(count(keras_cnn5(padding=2)))


def keras_cnn5(padding: int) -> nn.Module:
    """Seed 004's net with three 5×5 convolutions."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=padding),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=padding),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 5, padding=padding),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.LazyLinear(64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def _works(net: nn.Module, side: int) -> bool:
    """Whether torch runs ``net`` on a side×side input."""
    try:
        net(torch.zeros(1, 1, side, side))
    except RuntimeError:
        return False
    return True


def test_controls_rewrite_the_text(server, page):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server}/build?net={SEED_004}&lang=en")
    total = page.get_by_test_id("total-params")
    expect(total).to_have_text("101,578")
    box = page.get_by_test_id("net-string")
    first = page.locator('.token-row[data-index="0"]')
    first.locator('input[data-field="kernel"]').fill("5")
    first.locator('input[data-field="kernel"]').dispatch_event("change")
    expect(box).to_have_value(SEED_004.replace("32C3", "32C5"))
    expect(total).to_have_text(count(keras_cnn(5)))
    first.locator('input[data-field="padding"]').fill("2")
    first.locator('input[data-field="padding"]').dispatch_event("change")
    expect(box).to_have_value(SEED_004.replace("32C3", "32C5p2"))
    # add a BN after the selected first row, then remove it, then move the pool up and back
    first.click()
    page.locator('button[data-add="bn"]').click()
    expect(box).to_have_value(SEED_004.replace("32C3", "32C5p2-BN"))
    page.locator('.token-row[data-index="1"] button[aria-label="remove"]').click()
    expect(box).to_have_value(SEED_004.replace("32C3", "32C5p2"))
    page.locator('.token-row[data-index="1"] button[aria-label="move up"]').click()
    expect(box).to_have_value(SEED_004.replace("32C3-MP2", "MP2-32C5p2", 1))
    # a residual block: its shortcut is drawn
    box.fill("1x28x28-16C3p1-BN-R16-R32s2-GAP-10N")
    expect(page.get_by_test_id("skip")).to_have_count(2)
    expect(page.locator('.token-row[data-kind="res"]')).to_have_count(2)


def test_caps_are_named(server, page):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server}/build?lang=en&net=3x1024x1024-4096C3p1*4-10N")
    expect(page.get_by_test_id("net-error")).to_contain_text(re.compile("MAX_(PARAMS|MACS|FEATURE_ELEMENTS)"))


CHINESE = re.compile(r"[\u4e00-\u9fff]")


def test_build_page_in_chinese(server, page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server}/build?net={SEED_004}&lang=zh")
    expect(page.get_by_test_id("total-params")).to_have_text("101,578")
    # every piece of text the page wrote (not the net's own tokens, layer names, types and numbers) is Chinese
    texts = page.evaluate("""() => [...document.querySelectorAll(`[data-i18n], .kind, .build-add button, label.field,
        #totals span, thead th, .net-label span, #conventions`)].map(e => e.textContent.trim()).filter(Boolean)""")
    english = [
        s
        for s in texts
        if re.search(
            r"[A-Za-z]{3,}",
            re.sub(
                r"\b(ReLU|Tanh|GAP|BN|MACs|FLOPs|API|CNN|"
                r"MPs|APs|kCs|kN|Dp|Rk|tok|Keras|LeNet)\b",
                "",
                s,
            ),
        )
        and not CHINESE.search(s)
    ]
    assert english == []
    assert len(texts) > 30
    page.screenshot(path=str(shot_path("build-zh.png", tmp_path)), full_page=False)
    # a net that collapses is explained in Chinese too
    page.get_by_test_id("net-string").fill(SEED_004.replace("C3", "C5"))
    error = page.get_by_test_id("net-error")
    expect(error).to_contain_text("conv3 的特征图坍缩")
    expect(error).to_contain_text("可用的最小输入")
    assert not re.search(r"\b(map|kernel|collapse)\b", error.inner_text())


def test_a_bad_token_is_explained_in_chinese_over_the_last_net_that_worked(server, page):  # noqa: F811
    from playwright.sync_api import expect
    from test_web_i18n_browser import ALLOWED, english_words

    page.goto(f"{server}/build?net={SEED_004}&lang=zh")
    total = page.get_by_test_id("total-params")
    expect(total).to_have_text("101,578")
    stale = page.get_by_test_id("stale-note")
    expect(stale).to_be_hidden()
    page.get_by_test_id("net-string").fill(SEED_004.replace("MP2-64C3", "MQ2-64C3", 1))
    error = page.get_by_test_id("net-error")
    expect(page.get_by_test_id("net-error-token")).to_have_text("MQ2")
    reason = page.get_by_test_id("net-error-reason")
    expect(reason).to_contain_text("未知的层 'MQ2'：应为 kCs（卷积层）、MPs/APs（池化层）")
    # no English UI word: the typed net, and the notation's own tokens (kCs, kN, Dp, Rk), are code
    assert english_words(error.inner_text(), ALLOWED | {"kCs", "kN", "Dp", "Rk"}) == set()
    # the panel below is still seed 004's, and says so
    expect(stale).to_be_visible()
    expect(stale).to_have_text("显示的是上一个可用的网络，不是上面的层字符串。")
    expect(page.locator("#analysis")).to_have_class(re.compile(r"\bstale\b"))
    expect(total).to_have_text("101,578")
    opacity = page.eval_on_selector("#analysis > section", "s => getComputedStyle(s).opacity")
    assert float(opacity) < 1
    # the language switch redraws the message from the same answer, in English
    page.get_by_test_id("lang-en").click()
    expect(reason).to_have_text(re.compile(r"^unknown layer 'MQ2': expected kCs \(conv\)"))
    expect(stale).to_have_text("Showing the last net that worked, not the string above.")
    # a string that works again: the mark goes
    page.get_by_test_id("net-string").fill(SEED_004)
    expect(error).to_be_hidden()
    expect(stale).to_be_hidden()
    expect(page.locator("#analysis")).not_to_have_class(re.compile(r"\bstale\b"))
    # a page opened on a bad string has no last net to mark
    page.goto(f"{server}/build?net=1x28x28-32C3p1p2-10N&lang=zh")
    expect(reason).to_have_text("填充（p）写了两次")
    expect(stale).to_be_hidden()


@pytest.mark.slow
def test_build_train_predict_and_neuron(browser, tmp_path):
    """Build -> Train this -> epoch 1 finishes -> Use -> Predict shows its maps -> a pixel's neuron view."""
    import json
    import urllib.request

    from playwright.sync_api import expect
    from test_train_page_browser import open_page, serving
    from webclient import FASHION

    if not FASHION.is_dir():
        pytest.skip("Fashion-MNIST not at /usr/share/datasets")
    runs, errors = tmp_path / "runs", []
    runs.mkdir()
    net = "1x28x28-8C3p1-MP2-16C3-MP2-32N-10N"
    with serving(runs) as url:
        page = open_page(browser, errors)
        page.goto(f"{url}/build?net={net}&lang=en")
        expect(page.get_by_test_id("total-params")).to_have_text(
            count(
                nn.Sequential(
                    nn.Conv2d(1, 8, 3, padding=1),
                    nn.MaxPool2d(2),
                    nn.Conv2d(8, 16, 3),
                    nn.MaxPool2d(2),
                    nn.Flatten(),
                    nn.Linear(16 * 6 * 6, 32),
                    nn.Linear(32, 10),
                )
            )
        )
        page.get_by_test_id("train-this").click()
        expect(page).to_have_url(re.compile(r"/train\?model="))
        expect(page.locator("select[name=model]")).to_have_value(net)
        page.select_option("select[name=dataset]", "fashion-mnist")
        page.fill("input[name=epochs]", "1")
        page.fill("input[name=limit]", "1200")
        page.get_by_test_id("train-start").click()
        expect(page.get_by_test_id("train-epoch")).to_have_text("1/1", timeout=120_000)
        expect(page.get_by_test_id("train-use")).to_be_enabled(timeout=60_000)
        expect(page.get_by_test_id("train-filters")).to_have_attribute("data-epoch", "1", timeout=30_000)
        page.get_by_test_id("train-use").click()
        expect(page.locator("#use-note")).to_contain_text(net)
        info = json.load(urllib.request.urlopen(url + "/api/info"))
        assert info["model"] == net

        page.goto(f"{url}/?lang=en")
        expect(page.locator("#gallery button").first).to_be_visible()
        page.locator("#gallery button").nth(4).click()
        conv1 = page.locator('#layers canvas[data-layer="conv1"]')
        expect(conv1).to_have_count(8)
        layer = page.evaluate("predictState.result.layers[0]")
        assert (layer["h"], layer["w"]) == (28, 28)
        box = conv1.nth(0).bounding_box()
        page.mouse.click(box["x"] + box["width"] * 14.5 / 28, box["y"] + box["height"] * 14.5 / 28)
        expect(page.get_by_test_id("neuron-value")).to_contain_text("conv1, map 0, pixel (y 14, x 14)")
        expect(page.get_by_test_id("dot-product")).to_have_attribute("data-after", re.compile(r"\d"))
        page.close()
    assert not errors, f"browser errors: {errors}"
