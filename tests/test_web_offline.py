"""The web app works offline: its pages load nothing from another site (a Content-Security-Policy of
default-src 'self' and no outside URL in any static file), and the API docs (Swagger UI) are served from the
package rather than a CDN."""

from __future__ import annotations

from pathlib import Path

from webclient import client_fixture as client_fixture  # fixtures, found by pytest under their names
from webclient import run_dir_fixture as run_dir_fixture


def test_pages_load_nothing_from_elsewhere(client):
    for path in ("/", "/explore"):
        r = client.get(path)
        assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    static = Path(__import__("cnnzoo.web", fromlist=["x"]).__file__).parent / "static"
    for f in static.iterdir():
        text = f.read_text()
        for url in ("http://", "https://", "//fonts.", "cdn"):
            hits = [line for line in text.splitlines() if url in line and "w3.org/2000/svg" not in line]
            assert not hits, f"{f.name} refers to {url}: {hits[:1]}"
    assert client.get("/static/predict.js").status_code == 200
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]


def test_openapi_docs_are_served_without_a_cdn(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert "cdn." not in page.text and "https://" not in page.text.split("<body>")[0]
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]
