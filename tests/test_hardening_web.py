"""The web server facing hostile clients: only requests whose Host names this server are answered (DNS
rebinding), HEAD answers like GET, long names are not echoed whole, a urlencoded file field gets a clear
line, non-finite model outputs carry a warning, and under a real uvicorn connections whose body or headers
never finish (slowloris) are closed while other clients are still served within a second."""

from __future__ import annotations

import io
import socket
import threading
import time

import pytest
import torch
from fastapi.testclient import TestClient
from hardening_harness import (
    good_run_fixture as good_run_fixture,  # fixtures, found by pytest under their names
)
from hardening_harness import root_fixture as root_fixture
from PIL import Image

from cnnzoo import checkpoint as ckpt


@pytest.fixture(scope="module")
def session(good_run):
    from cnnzoo.web import load_session

    return load_session(good_run)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (28, 28), 0).save(buf, "PNG")
    return buf.getvalue()


def test_host_header_must_name_this_server(session):
    from cnnzoo.web import create_app
    from cnnzoo.web.guards import host_names

    app = create_app(session, allowed_hosts=host_names("127.0.0.1"))
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST"):
        assert TestClient(app, base_url=f"http://{host}").get("/api/info").status_code == 200, host
    r = TestClient(app, base_url="http://rebound.evil.example:8000").get("/api/info")
    assert r.status_code == 400 and "--allow-host" in r.json()["error"] and "source" not in r.text
    extra = create_app(session, allowed_hosts=host_names("127.0.0.1", ["lab.example"]))
    assert TestClient(extra, base_url="http://lab.example:8000").get("/api/info").status_code == 200


def test_head_answers_like_get(session):
    from cnnzoo.web import create_app

    client = TestClient(create_app(session))
    for path in ("/", "/explore", "/api/info", "/api/models", "/static/app.js"):
        get, head = client.get(path), client.head(path)
        if get.status_code == 404:
            continue  # a static file that may be named otherwise
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""


def test_long_names_are_not_echoed_whole(session):
    from cnnzoo.web import create_app

    client = TestClient(create_app(session))
    r = client.get("/api/summary/" + "A" * 20_000)
    assert r.status_code == 404 and len(r.text) < 300
    r = client.get("/api/summary/lenet5", params={"input": "9" * 20_000})
    assert r.status_code == 422 and len(r.text) < 300


def test_urlencoded_file_gets_a_clear_line(session):
    from cnnzoo.web import create_app

    client = TestClient(create_app(session))
    for endpoint in ("/api/predict", "/api/feature-maps"):
        r = client.post(endpoint, data={"file": "not an upload"})
        assert r.status_code == 422
        assert r.json() == {"error": "send the image as multipart/form-data field 'file'"}


def test_non_finite_outputs_carry_a_warning(good_run):
    from cnnzoo.web import create_app
    from cnnzoo.web.session import Session

    model, meta = ckpt.load_checkpoint(good_run)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    client = TestClient(create_app(Session(model, meta, "nan")))
    r = client.post("/api/predict", files={"file": ("x.png", _png(), "image/png")})
    assert r.status_code == 200
    body = r.json()
    assert "not finite" in body["warning"]
    assert all(row["probability"] is not None for row in body["top"])


@pytest.fixture()
def live_server(session):
    """The app under uvicorn (as `cnnzoo serve` runs it) with a 1.5 s body deadline."""
    import uvicorn

    from cnnzoo.commands.serve import KEEP_ALIVE_SECONDS, bind
    from cnnzoo.web import create_app
    from cnnzoo.web.guards import header_deadline_protocol

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = create_app(session, allowed_hosts=["127.0.0.1"], body_seconds=1.5)
    config = uvicorn.Config(
        app, log_level="warning", timeout_keep_alive=KEEP_ALIVE_SECONDS, http=header_deadline_protocol(1.5)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def _get(port: int, path: str = "/api/info") -> tuple[int, float]:
    import http.client

    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status, time.perf_counter() - t0


def test_stalled_upload_is_closed_and_others_are_served(live_server):
    stalled = []
    for _ in range(20):  # a small slowloris: headers sent, the body never comes
        s = socket.create_connection(("127.0.0.1", live_server))
        s.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 100000\r\n\r\n--x\r\n"
        )
        s.settimeout(6)
        stalled.append(s)
    status, seconds = _get(live_server)
    assert status == 200 and seconds < 1
    t0 = time.perf_counter()
    for s in stalled:
        answer = b""
        while chunk := s.recv(4096):  # until the server closes the connection
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        s.close()
    assert time.perf_counter() - t0 < 5
    assert _get(live_server)[0] == 200


def test_slow_headers_are_closed_and_others_are_served(live_server):
    """Slowloris proper: the request line and headers trickle in a byte at a time and never end."""
    slow = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", live_server))
        s.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        s.settimeout(8)
        slow.append(s)
    t0 = time.perf_counter()
    for _ in range(4):  # keep trickling: each byte would reset a timer that only counts idleness
        time.sleep(0.5)
        for s in slow:
            try:
                s.sendall(b"a")
            except OSError:
                pass
        status, seconds = _get(live_server)
        assert status == 200 and seconds < 1
    for s in slow:
        while s.recv(4096):  # until the server closes it (recv raises on the 8 s timeout if it never does)
            pass
        s.close()
    assert time.perf_counter() - t0 < 6
    assert _get(live_server)[0] == 200
