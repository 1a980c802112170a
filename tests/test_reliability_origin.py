"""A page of another origin cannot drive ``cnnzoo serve``: in real headless Chromium, a page served from a
second port auto-submits a form to ``/api/train/start`` and sends no-cors fetches to ``/api/train/stop`` and
``/api/runs/<id>/use``; the server answers each with 403 and nothing starts, stops or switches. The same
requests from the server's own page reach the app. Plus the header rules without a browser.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_web_browser import CHROMIUM  # its `browser` fixture is shared through conftest.py

from cnnzoo.web.guards import cross_origin

ROOT = Path(__file__).resolve().parents[1]


def start_serve(runs: Path) -> tuple[subprocess.Popen, str]:
    """A real ``cnnzoo serve --port 0`` process and its base URL."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnzoo", "serve", "--port", "0", "--runs-dir", str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline, url, said = time.monotonic() + 60, None, []
    while url is None:
        said.append(proc.stdout.readline())
        line = said[-1]
        assert line and time.monotonic() < deadline, f"cnnzoo serve did not start: {''.join(said)[-800:]}"
        m = re.search(r"open (http://\S+?)/?$", line.strip())
        url = m.group(1) if m else None
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain its output
    return proc, url


@contextmanager
def cnnzoo_serve(runs: Path):
    """A real ``cnnzoo serve --port 0`` process; yields its base URL."""
    proc, url = start_serve(runs)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@contextmanager
def attacker_site(html: str):
    """Another origin: a plain HTTP server on its own port that serves ``html`` at ``/``."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")
def test_another_origin_can_neither_start_stop_nor_switch(browser, tmp_path):
    runs = tmp_path / "runs"
    run = runs / "lenet5_modern-fashion-mnist-20260101-000000"  # a finished run the attacker tries to serve
    (run / "snapshots").mkdir(parents=True)
    (run / "snapshots" / "epoch-001.json").write_text("{}")
    with cnnzoo_serve(runs) as target:
        before = get(target + "/api/info")
        html = f"""<!doctype html><body>
<iframe name="sink"></iframe>
<form id="f" method="POST" action="{target}/api/train/start" target="sink" enctype="multipart/form-data">
<input name="model" value="resnet110"><input name="dataset" value="cifar10"><input name="epochs" value="10000">
</form>
<script>
window.results = [];
document.getElementById("f").submit();
for (const [url, type] of [["/api/train/stop", "text/plain"], ["/api/runs/{run.name}/use", "text/plain"],
                           ["/api/train/start", "application/x-www-form-urlencoded"]]) {{
  fetch("{target}" + url, {{method: "POST", mode: "no-cors", headers: {{"Content-Type": type}},
                           body: "model=lenet5_modern&epochs=1"}})
    .then(() => window.results.push("sent"), e => window.results.push(String(e)));
}}
</script>"""
        with attacker_site(html) as evil:
            page = browser.new_page()
            page.goto(evil + "/")
            page.wait_for_function("window.results.length === 3", timeout=30_000)
            page.wait_for_timeout(500)
            sink = page.frame(name="sink")
            form_answer = sink.content() if sink else ""
            page.close()
        assert "only this server's own pages may change its state" in form_answer
        state = get(target + "/api/train/state")
        assert state["job"] is None  # nothing started (and so nothing was stopped)
        assert [p.name for p in runs.iterdir()] == [run.name]  # no new run folder
        assert get(target + "/api/info") == before  # the served model did not switch

        # The server's own page reaches the app with the same requests: 409, not 403.
        page = browser.new_page()
        page.goto(target + "/train")
        answer = page.evaluate(
            """async () => { const r = await fetch("/api/train/stop", {method: "POST"});
                             return [r.status, (await r.json()).error]; }"""
        )
        page.close()
        assert answer == [409, "no run is in progress"]


def _headers(**kv) -> dict[bytes, bytes]:
    return {k.replace("_", "-").encode(): v.encode() for k, v in kv.items()}


@pytest.mark.parametrize(
    "method,headers,refused",
    [
        ("POST", _headers(host="127.0.0.1:8000", origin="http://127.0.0.1:8000"), False),
        (
            "POST",
            _headers(host="localhost:8000", origin="http://localhost:8000", sec_fetch_site="same-origin"),
            False,
        ),
        ("POST", _headers(host="127.0.0.1"), False),  # curl: no Origin, no Sec-Fetch-Site
        ("POST", _headers(host="127.0.0.1:80", origin="http://127.0.0.1"), False),  # default port
        ("POST", _headers(host="127.0.0.1:8000", origin="http://127.0.0.1:9000"), True),  # another port
        ("POST", _headers(host="127.0.0.1:8000", origin="https://127.0.0.1:8000"), True),  # another scheme
        ("POST", _headers(host="127.0.0.1:8000", origin="null"), True),  # a sandboxed iframe, a data: URL
        ("POST", _headers(host="127.0.0.1:8000", sec_fetch_site="cross-site"), True),
        ("POST", _headers(host="127.0.0.1:8000", sec_fetch_site="same-site"), True),
        ("DELETE", _headers(host="127.0.0.1:8000", origin="http://evil.example"), True),
        (
            "GET",
            _headers(host="127.0.0.1:8000", origin="http://evil.example", sec_fetch_site="cross-site"),
            False,
        ),
    ],
)
def test_cross_origin_rules(method, headers, refused):
    assert (cross_origin(method, headers) is not None) == refused
