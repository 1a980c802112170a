"""The web pages in real headless Chromium, in 中文 and in what a learner clicks: every page with ``?lang=zh``
shows no English UI word (model and layer names, code, numbers and units allowed); i18n.js's two tables
have the same keys; the predict page's footer gives the test accuracy of result.json; the neuron view keeps
its receptive-field box on the input after Play, and shows Σ w·x + b for a fully connected unit; disabled
buttons look disabled; the Train page's model dropdown shows the whole name; the explorer's explanation box
shows every line of a long recurrence.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from test_web_browser import CHROMIUM
from webclient import FASHION

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not at /usr/share/datasets"),
]
# Words that are names, not UI language: the app, units and abbreviations the seeds keep in Latin letters,
# datasets, networks, the language switch's own "English", math functions in formulas.
ALLOWED = {
    "cnnzoo",
    "API",
    "English",
    "MACs",
    "FLOPs",
    "LeNet",
    "LeCun",
    "AlexNet",
    "ImageNet",
    "VGG",
    "ResNet",
    "ReLU",
    "RBF",
    "tanh",
    "max",
    "Fashion",
    "MNIST",
    "CIFAR",
    "GiB",
    "MiB",
    "KiB",
    "Tab",
    "input",
    "BN",
    "GAP",
}
# ("input" is the diagram's name of the input tensor's box, as layer names are code; BN and GAP are tokens of
# the layer-string notation the Build page teaches, code too.)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server whose newest run is a one-epoch lenet5_modern with snapshots and result.json."""
    from helpers import serving

    import cnnzoo
    from cnnzoo.web import create_app, load_session

    runs = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5_modern")
    cnnzoo.fit(
        model, "fashion-mnist", epochs=1, limit=600, out=str(runs / "lenet"), snapshots=True, progress="quiet"
    )
    app = create_app(load_session(None, runs))
    app.state.runs_dir = str(runs)
    with serving(app) as url:
        yield url, runs / "lenet"


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    page.close()
    assert not errors, f"browser errors: {errors}"


def has_page(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False


def code_words(model: torch.nn.Module) -> set[str]:
    """Names that are code: torch's and cnnzoo's module classes, the model's own layer names."""
    import cnnzoo.layers

    names = {n for n in dir(torch.nn) + dir(cnnzoo.layers) if n[:1].isupper()}
    for name, _ in model.named_modules():
        names.update(name.split("."))
    return names


def english_words(text: str, allowed: set[str]) -> set[str]:
    """Latin-letter words in ``text`` that are not code, numbers, units or names."""
    text = re.sub(r"`[^`]*`", " ", text)  # commands
    text = re.sub(r"\S*/\S*", " ", text)  # paths, docs/analyzer.md, "true \\ predicted"'s kin
    text = re.sub(r"\b\w+(?:\.\w+)+", " ", text)  # dotted names: features.conv1, cnnzoo.analysis.schema
    words = set(re.findall(r"[A-Za-z][A-Za-z0-9_\-]*", text))
    return {
        w
        for w in words
        if not re.search(r"[\d_]", w)
        and len(w) > 1
        and w not in allowed
        and w.lower() not in {a.lower() for a in allowed}
    }


def visible_text(page) -> str:
    """What the page shows: its rendered text, the visible inputs' placeholders and the chosen options."""
    return page.evaluate("""() => {
        const shown = (e) => e.offsetParent !== null;
        const extra = [...document.querySelectorAll("input[placeholder]")].filter(shown).map((e) => e.placeholder);
        return [document.body.innerText, ...extra].join("\\n");
    }""")


def test_i18n_tables_have_the_same_keys(server, page):
    url, _ = server
    page.goto(url + "/")
    en, zh = page.evaluate("[Object.keys(STRINGS.en), Object.keys(STRINGS.zh)]")
    assert sorted(set(en) - set(zh)) == [] and sorted(set(zh) - set(en)) == []
    assert len(en) == len(set(en)) and len(en) > 150


def test_every_page_in_chinese_has_no_english_ui_word(server, page, browser):
    from playwright.sync_api import expect

    import cnnzoo
    from cnnzoo.models import get_model_info, list_models

    url, run = server
    allowed = (
        ALLOWED | code_words(cnnzoo.create_model("lenet5_modern")) | code_words(cnnzoo.create_model("lenet5"))
    )
    for name in list_models():
        info = get_model_info(name)
        allowed |= {name, info.family, *re.findall(r"[A-Za-z]+", info.paper.split(",")[0])}
    allowed |= {"fashion-mnist", "mnist", "cifar10", "kmnist"}
    found = {}

    page.goto(url + "/?lang=zh")
    expect(page.locator("#gallery button")).to_have_count(30)
    page.locator("#gallery button").nth(0).click()
    expect(page.locator("#layers .layer")).to_have_count(7)
    page.locator('canvas[data-layer="features.conv1"][data-channel="0"]').click()
    expect(page.get_by_test_id("dot-product")).to_contain_text("卷积核")
    found["/ (conv1 neuron)"] = english_words(visible_text(page), allowed)
    page.locator('canvas[data-layer="classifier.fc1"]').click(position={"x": 3, "y": 3})
    expect(page.get_by_test_id("dot-product")).to_contain_text("全连接")
    expect(page.locator("#prediction")).to_have_text(
        re.compile("^(T恤|裤子|套衫|裙子|外套|凉鞋|衬衫|运动鞋|包|靴子)$")
    )
    found["/ (fc1 neuron)"] = english_words(visible_text(page), allowed)

    page.goto(url + "/explore?lang=zh")
    expect(page.locator("#rows tr").first).to_be_visible()
    page.locator('#rows td[data-field="receptive_field"]').nth(4).click()
    expect(page.get_by_test_id("explanation")).to_contain_text("感受野")
    found["/explore"] = english_words(visible_text(page), allowed)

    page.goto(url + "/train?lang=zh")
    expect(page.get_by_test_id("train-filters")).to_have_attribute("data-epoch", "1")  # the run's replay
    expect(page.locator("#wrong figure").first).to_be_visible()
    found["/train"] = english_words(visible_text(page), allowed)

    if has_page(url + "/build"):
        page.goto(url + "/build?lang=zh")
        page.wait_for_load_state("networkidle")
        found["/build"] = english_words(visible_text(page), allowed)
    assert {k: sorted(v) for k, v in found.items() if v} == {}
    assert "步长" not in "".join(page.evaluate("Object.values(STRINGS.zh)"))  # jump is 跳距, 步幅 is stride


def test_footer_gives_the_test_accuracy(server, page):
    from playwright.sync_api import expect

    url, run = server
    result = json.loads((run / "result.json").read_text())
    train = json.loads((run / "checkpoint.json").read_text())["metrics"]["accuracy"]
    page.goto(url + "/")
    expect(page.locator("#footer")).to_contain_text(f"test accuracy {100 * result['test_accuracy']:.2f} %")
    assert f"{100 * train:.2f}" not in page.locator("#footer").inner_text()


def box_inside_input(page) -> dict:
    return page.evaluate("""() => {
        const box = document.getElementById("rf-box").getBoundingClientRect();
        const img = document.getElementById("rf-input").getBoundingClientRect();
        return {inside: box.top >= img.top - 1 && box.left >= img.left - 1 && box.bottom <= img.bottom + 1
                && box.right <= img.right + 1, top: document.getElementById("rf-box").style.top};
    }""")


def test_rf_box_stays_on_the_input_after_play(server, page):
    from playwright.sync_api import expect

    url, _ = server
    page.goto(url + "/")
    page.locator("#gallery button").nth(3).click()
    expect(page.locator("#layers .layer")).to_have_count(7)
    page.locator('canvas[data-layer="features.conv1"][data-channel="0"]').click()
    expect(page.get_by_test_id("neuron-value")).to_contain_text("features.conv1")
    page.locator("#slide-play").click()
    page.wait_for_timeout(300)
    page.locator('canvas[data-layer="features.conv2"][data-channel="0"]').click(position={"x": 70, "y": 70})
    expect(page.get_by_test_id("neuron-value")).to_contain_text("features.conv2")
    page.wait_for_timeout(600)  # the Play timer, had it survived, would have moved the box by now
    assert box_inside_input(page)["inside"], box_inside_input(page)
    expect(page.locator("#slide-figure")).to_be_hidden()


def test_fully_connected_unit_shows_its_weighted_sum(server, page):
    from playwright.sync_api import expect

    url, _ = server
    page.goto(url + "/")
    page.locator("#gallery button").nth(0).click()
    expect(page.locator("#layers .layer")).to_have_count(7)
    page.locator('canvas[data-layer="classifier.fc2"]').click(position={"x": 3, "y": 3})  # unit 0
    dot = page.get_by_test_id("dot-product")
    expect(dot).to_have_attribute("data-kind", "linear")
    expect(dot).to_contain_text("Σ w·x + b")
    expect(dot).to_contain_text("+ the other 104 products w·x")  # fc2 reads fc1's 120 units, 16 written out
    d = dot.evaluate("e => ({...e.dataset})")
    assert float(d["z"]) == pytest.approx(float(d["sum"]) + float(d["bias"]))
    assert max(float(d["z"]), 0.0) == pytest.approx(float(d["after"]))  # fc2 is followed by a ReLU
    value = page.get_by_test_id("neuron-value").get_attribute("data-value")
    assert float(d["after"]) == pytest.approx(float(value), abs=1e-4)


def test_disabled_buttons_look_disabled(server, page):
    url, _ = server
    page.goto(url + "/train")
    page.wait_for_selector("#model option", state="attached")
    looks = page.evaluate("""() => {
        const stop = document.getElementById("stop");
        const twin = stop.cloneNode(true);
        twin.disabled = false;
        stop.after(twin);
        const pick = (e) => { const s = getComputedStyle(e); return [s.backgroundColor, s.color, s.cursor]; };
        const out = [stop.disabled, pick(stop), pick(twin)];
        twin.remove();
        return out;
    }""")
    disabled, off, on = looks
    assert disabled and off != on and off[2] == "not-allowed"


def test_model_dropdown_shows_the_whole_name(server, page):
    url, _ = server
    for width in (1024, 1360):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(url + "/train")
        page.wait_for_selector("#model option", state="attached")
        cut = page.evaluate("""() => {
            const sel = document.getElementById("model");
            const ctx = document.createElement("canvas").getContext("2d");
            ctx.font = getComputedStyle(sel).font;
            return [...sel.options].map((o) => [o.text, ctx.measureText(o.text).width])
                .filter(([, need]) => sel.clientWidth < need + 24).map(([text]) => text);  // + padding, arrow
        }""")
        assert cut == [], (width, cut)


def test_explanation_box_shows_a_long_recurrence_whole(server, page):
    from playwright.sync_api import expect

    url, _ = server
    page.goto(url + "/explore?model=resnet50&input=3x224x224")
    cells = page.locator('#rows td[data-field="receptive_field"]')
    expect(cells.first).to_be_visible()
    cells.last.click()
    explained = json.loads(
        page.evaluate("""async () => JSON.stringify((await (await fetch(
            "/api/explain/resnet50?input=3x224x224&layer=fc&field=receptive_field")).json()).explanations[0])""")
    )
    box = page.get_by_test_id("explanation")
    expect(box.locator(".line").first).to_be_visible()
    sizes = box.evaluate("""(b) => {
        const card = b.closest(".card");
        const lines = b.querySelectorAll(".line");
        const last = lines[lines.length - 1].getBoundingClientRect();
        const frame = card.getBoundingClientRect();
        return {wide: [card.scrollWidth, card.clientWidth], last: [last.bottom, frame.bottom], lines: lines.length,
                top: card.scrollTop};
    }""")
    assert sizes["lines"] == len(explained["lines"]) > 20  # a deep recurrence, every step on the page
    assert sizes["wide"][0] <= sizes["wide"][1] + 1, sizes  # no line cut at the right
    assert sizes["top"] == 0 and sizes["last"][0] <= sizes["last"][1] + 1, sizes  # the last step in view


def test_untrained_page_in_chinese(page, tmp_path):
    from helpers import serving
    from playwright.sync_api import expect

    from cnnzoo.web import create_app, load_session

    with serving(create_app(load_session(None, tmp_path))) as url:
        page.goto(url + "/?lang=zh")
        expect(page.locator("#banner")).to_contain_text("未经训练")
        expect(page.locator("#footer")).to_contain_text("未训练")
        expect(page.locator("#gallery button")).to_have_count(30)
        page.wait_for_load_state("networkidle")
        words = english_words(visible_text(page), ALLOWED | {"lenet5_modern", "fashion-mnist"})
        page.goto("about:blank")  # nothing left in flight when the server stops
    assert words == set()
