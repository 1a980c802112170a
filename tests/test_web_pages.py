"""The web app's pages are found, not listed (cnnzoo.web.pages): every page has its HTML, is served at its
address with every page in its nav bar, and has its nav and brand strings in both tables of i18n.js (run by
Node, as the browser runs it); a new page is one HTML file; the API modules' routes are all included; the
Host check and the same-origin guard stand in front of the pages and the found routes alike."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers import i18n_strings

from cnnzoo.web import create_app, load_session
from cnnzoo.web.pages import STATIC, find_pages, page_router

PAGES = find_pages()


class _Header(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict | None = None

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "header" and self.attrs is None:
            self.attrs = dict(attrs)


def served_header(response) -> dict:
    parser = _Header()
    parser.feed(response.text)
    assert parser.attrs is not None, "the page has no header"
    return parser.attrs


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return TestClient(create_app(load_session(None, tmp_path_factory.mktemp("runs"))))


def test_the_pages_that_exist_today_are_all_found():
    assert [(p.id, p.href) for p in PAGES] == [
        ("predict", "/"), ("explore", "/explore"), ("build", "/build"), ("train", "/train"), ("api", "/docs"),
    ]  # fmt: skip


@pytest.mark.parametrize("page", [p for p in PAGES if p.file], ids=lambda p: p.id)
def test_every_page_is_served_with_every_page_in_its_nav(client, page):
    assert page.file.is_file() and page.file.parent == STATIC
    r = client.get(page.href)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    header = served_header(r)
    assert header["data-page"] == page.id
    nav = json.loads(header["data-nav"])
    assert nav == [{"id": p.id, "href": p.href} for p in PAGES]
    assert re.sub(r' data-nav="[^"]*"', "", r.text, count=1) == page.file.read_text(encoding="utf-8")
    for p in nav:  # every link leads somewhere
        assert client.get(p["href"]).status_code == 200, p


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_every_page_has_its_strings_in_both_languages(tmp_path):
    keys = i18n_strings(tmp_path)
    assert set(keys["en"]) == set(keys["zh"]) and len(keys["en"]) > 100
    for page in PAGES:
        needed = [f"nav.{page.id}"] + ([f"brand.{page.id}"] if page.file else [])
        for lang in ("en", "zh"):
            missing = [k for k in needed if k not in keys[lang]]
            assert not missing, f"i18n.js STRINGS.{lang} lacks {missing} for the page {page.href}"


def test_a_new_page_is_one_html_file(tmp_path):
    (tmp_path / "index.html").write_text('<header class="top" data-page="home" data-order="1"></header>')
    (tmp_path / "zoo.html").write_text("<p>hi</p>\n<header class='top' data-page='zoo'></header>")
    (tmp_path / "fragment.html").write_text("<p>no header: not a page</p>")
    pages = find_pages(tmp_path)
    assert [(p.id, p.href) for p in pages] == [("home", "/"), ("api", "/docs"), ("zoo", "/zoo")]
    app = FastAPI()
    app.include_router(page_router(pages))
    r = TestClient(app).get("/zoo")
    assert r.status_code == 200 and r.text.startswith("<p>hi</p>")
    assert [p["id"] for p in json.loads(served_header(r)["data-nav"])] == ["home", "api", "zoo"]
    assert TestClient(app).get("/fragment").status_code == 404
    (tmp_path / "zoo2.html").write_text('<header class="top" data-page="zoo"></header>')
    with pytest.raises(ValueError, match="share an id"):
        find_pages(tmp_path)


def test_every_api_module_route_is_included(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/build/check", "/api/build/starts", "/api/explain/{model}", "/api/neuron",
                 "/api/train/start", "/api/runs/{run_id}/use", "/api/predict", "/api/info"):  # fmt: skip
        assert path in paths, path
    assert not any(p.href in paths for p in PAGES)  # the pages stay out of the API's docs


def test_the_guards_stand_in_front_of_found_pages_and_routes(tmp_path):
    app = create_app(load_session(None, tmp_path), allowed_hosts=["127.0.0.1"])
    ours, foreign = (
        TestClient(app, base_url="http://127.0.0.1:8000"),
        TestClient(app, base_url="http://evil.example"),
    )
    for page in PAGES:
        if page.file:
            assert ours.get(page.href).status_code == 200 and foreign.get(page.href).status_code == 400
    r = ours.post("/api/train/stop", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "own pages" in r.json()["error"]
