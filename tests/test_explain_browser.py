"""Explanations in a real headless Chromium (the server, browser and page fixtures of test_web_browser.py: a real
uvicorn on a loopback port serving a briefly trained lenet5_modern; any console error fails a test):
the explorer explains LeNet-5's C3 parameters (Table I), the predict page shows what a conv1 neuron sees,
and the 中文 switch translates the pages. ``CNNZOO_SCREENSHOTS=docs`` writes docs/img/explain-explorer.png,
docs/img/neuron-view.png and docs/img/zh.png.
"""

from __future__ import annotations

import re

import pytest
from test_web_browser import page, server, shot_path  # noqa: F401 (fixtures; `browser` is conftest's)

TABLE_I = "6·(3·25+1) + 9·(4·25+1) + 1·(6·25+1) = 1,516"


def test_explorer_explains_lenet5_c3_parameters(server, page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server}/explore?model=lenet5&input=1x32x32&lang=en")
    cell = page.locator('td[data-layer="c3"][data-field="params"]')
    expect(cell).to_have_text("1,516")
    expect(cell).to_have_attribute("tabindex", "0")
    cell.click()
    explanation = page.get_by_test_id("explanation")
    expect(explanation).to_contain_text(TABLE_I)
    expect(explanation).to_contain_text("Table I")
    # the layer it reads (s2's output, after act2) and the layer itself light up, in the table and diagram
    expect(page.locator("#rows tr.selected")).to_have_attribute("data-layer", "c3")
    expect(page.locator("#diagram g.selected")).to_have_count(1)
    page.screenshot(path=str(shot_path("explain-explorer.png", tmp_path)), full_page=False)

    # the keyboard: Tab to a figure, Enter; the receptive field lights up the layers of its recurrence
    rf = page.locator('td[data-layer="s4"][data-field="receptive_field"]')
    rf.focus()
    page.keyboard.press("Enter")
    expect(explanation).to_contain_text("1 + (5 − 1)·1 + (2 − 1)·1 + (5 − 1)·2 + (2 − 1)·2 = 16")
    feeds = page.locator("#rows tr.feeds")
    expect(feeds).to_have_count(3)  # c1, s2, c3; s4 itself is the selected row
    assert sorted(feeds.evaluate_all("rows => rows.map(r => r.dataset.layer)")) == ["c1", "c3", "s2"]
    expect(page.locator("#diagram g.feeds")).to_have_count(3)
    # every figure cell of every row is clickable
    fields = {"output_shape", "params", "macs", "flops", "connections", "receptive_field", "activation_bytes"}
    got = set(page.locator("#rows td[data-field]").evaluate_all("cs => cs.map(c => c.dataset.field)"))
    assert got == fields


def test_a_conv1_neuron_on_the_predict_page(server, page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server}/?lang=en")
    expect(page.locator("#gallery button")).to_have_count(30)
    page.locator("#gallery button").nth(4).click()
    conv1 = page.locator('#layers canvas[data-layer="features.conv1"]')
    expect(conv1).to_have_count(6)
    expect(conv1.nth(2)).to_have_attribute("data-channel", "2")
    # the brightest pixel of map 2 (a neuron whose ReLU is on), clicked in the middle of its square
    layer = page.evaluate("predictState.result.layers[0]")
    assert (layer["h"], layer["w"]) == (28, 28)
    channel = layer["data"][2 * 784 : 3 * 784]
    y, x = divmod(channel.index(max(channel)), 28)
    box = conv1.nth(2).bounding_box()
    page.mouse.click(box["x"] + box["width"] * (x + 0.5) / 28, box["y"] + box["height"] * (y + 0.5) / 28)

    title = page.get_by_test_id("neuron-value")
    expect(title).to_contain_text(f"features.conv1, map 2, pixel (y {y}, x {x})")
    # the theoretical receptive field: 5×5 around the pixel (padding 2), as the analyzer says
    expect(page.get_by_test_id("rf-box")).to_be_visible()
    rf = f"{max(0, y - 2)},{max(0, x - 2)},{min(28, y + 3)},{min(28, x + 3)}"
    expect(page.get_by_test_id("rf-box")).to_have_attribute("data-box", rf)
    expect(page.get_by_test_id("gradient")).to_have_attribute("src", re.compile("^data:image/png;base64,"))
    dot = page.get_by_test_id("dot-product")
    expect(dot).to_have_attribute("data-after", re.compile(r"\d"))
    d = dot.evaluate("e => ({...e.dataset})")
    value = float(title.get_attribute("data-value"))
    z = float(d["sum"]) + float(d["bias"])
    assert z == pytest.approx(float(d["z"]))
    assert value > 0 and round(max(0.0, z), 4) == pytest.approx(value, abs=1.5e-4)  # ReLU(Σ + b): the pixel
    # ... and the pixel of the map on screen (8-bit, 0..max) is that value
    assert abs(max(channel) - round(value / layer["max"] * 255)) <= 1
    expect(dot).to_contain_text("max(0,")  # the activation written out
    expect(dot.locator("table.grid")).to_have_count(2)  # the 5×5 kernel and the input patch

    page.locator("#neuron").screenshot(path=str(shot_path("neuron-view.png", tmp_path)))

    # conv1's slider: the kernel at the first position, the box at the image's corner
    slider = page.get_by_test_id("slide")
    expect(slider).to_be_visible()
    slider.fill("0")
    expect(page.get_by_test_id("rf-box")).to_have_attribute("style", re.compile(r"top: 0%; left: 0%"))
    expect(title).to_contain_text("pixel (y 0, x 0)")  # and its numbers, once the slider stops


def test_chinese_switch(server, page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server}/explore?model=lenet5&input=1x32x32")
    page.evaluate("localStorage.removeItem('cnnzoo.lang')")
    page.reload()
    head = page.locator("table.layers thead")
    expect(head).to_contain_text("params")
    page.get_by_test_id("lang-zh").click()
    for word in ["层", "参数", "乘加运算", "连接数", "感受野"]:
        expect(head).to_contain_text(word)
    page.locator('td[data-layer="c3"][data-field="params"]').click()
    expect(page.get_by_test_id("explanation")).to_contain_text("表 I")
    expect(page.get_by_test_id("explanation")).to_contain_text(TABLE_I)
    page.screenshot(path=str(shot_path("zh.png", tmp_path)), full_page=False)

    # remembered on the other pages, and ?lang=en sets it back
    page.goto(f"{server}/")
    expect(page.locator("nav a").first).to_have_text("预测")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    page.goto(f"{server}/train")
    expect(page.locator('nav a[href="/train"]')).to_have_text("训练")
    page.goto(f"{server}/explore?lang=en")
    expect(head).to_contain_text("RF (size/jump)")  # the English heading of cnnzoo.figures
