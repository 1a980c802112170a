"""Downloads against a local HTTP server the test runs: good, truncated, wrong bytes, stalled, missing.
Whatever happens, no partial file is left where a good one is expected."""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cnnzoo.data import load_dataset
from cnnzoo.data.download import download_file
from cnnzoo.errors import ChecksumError, DataError

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """/good/NAME, /truncated/NAME, /wrong/NAME, /stall/NAME; anything else is 404."""

    release: threading.Event

    def do_GET(self):  # noqa: N802 (http.server's naming)
        mode = self.path.strip("/").split("/")[0]
        if mode not in ("good", "truncated", "wrong", "stall"):
            self.send_error(404)
            return
        body = PAYLOAD if mode != "wrong" else PAYLOAD[::-1]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "truncated":
            self.wfile.write(body[: len(body) // 3])  # then close: fewer bytes than announced
        elif mode == "stall":
            self.wfile.write(body[:1000])
            self.wfile.flush()
            self.release.wait(20)  # hang until the test ends
        else:
            self.wfile.write(body)

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server():
    release = threading.Event()
    handler = type("H", (Handler,), {"release": release})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    release.set()
    httpd.shutdown()
    httpd.server_close()


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_good_download_is_verified_and_atomic(server, tmp_path):
    dest = tmp_path / "cache" / "file.gz"
    assert download_file([f"{server}/good/file.gz"], dest, MD5) == dest
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(dest.parent) == ["file.gz"]  # no .part file left behind


def test_truncated_download_leaves_nothing(server, tmp_path):
    dest = tmp_path / "cache" / "file.gz"
    with pytest.raises(DataError, match=r"could not download file.gz: .*/truncated/file.gz") as e:
        download_file([f"{server}/truncated/file.gz"], dest, MD5)
    assert "\n" not in str(e.value)
    assert leftovers(dest.parent) == []


def test_wrong_bytes_is_a_checksum_error(server, tmp_path):
    dest = tmp_path / "cache" / "file.gz"
    with pytest.raises(ChecksumError) as e:
        download_file([f"{server}/wrong/file.gz"], dest, MD5)
    msg = str(e.value)
    assert "file.gz" in msg and MD5 in msg and hashlib.md5(PAYLOAD[::-1]).hexdigest() in msg
    assert leftovers(dest.parent) == []


def test_stalled_server_times_out(server, tmp_path):
    dest = tmp_path / "cache" / "file.gz"
    t = time.monotonic()
    with pytest.raises(DataError, match=r"(?i)timed out|timeout"):
        download_file([f"{server}/stall/file.gz"], dest, MD5, timeout=0.5)
    assert time.monotonic() - t < 10
    assert leftovers(dest.parent) == []


def test_existing_good_file_is_not_clobbered_by_a_bad_download(server, tmp_path):
    dest = tmp_path / "file.gz"
    dest.write_bytes(b"previous good content")
    with pytest.raises(ChecksumError):
        download_file([f"{server}/wrong/file.gz"], dest, MD5)
    assert dest.read_bytes() == b"previous good content"
    assert leftovers(tmp_path) == ["file.gz"]


def test_falls_back_to_the_next_mirror(server, tmp_path):
    dest = tmp_path / "file.gz"
    download_file(
        [f"{server}/missing/file.gz", f"{server}/truncated/file.gz", f"{server}/good/file.gz"], dest, MD5
    )
    assert dest.read_bytes() == PAYLOAD and leftovers(tmp_path) == ["file.gz"]


def test_load_dataset_downloads_through_the_mirror_and_checks_md5(server, tmp_path, monkeypatch):
    # The local server serves bytes that are not the published KMNIST files: torchvision's MD5s refuse
    # them, and the cache holds no partial file afterwards.
    cache = tmp_path / "cache"
    monkeypatch.setenv("CNNZOO_DATA", str(cache))
    monkeypatch.setenv("CNNZOO_MIRROR", f"{server}/good/")
    with pytest.raises(ChecksumError) as e:
        load_dataset("kmnist")
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "bdb82020997e1d708af4cf47b453dcf7" in msg and MD5 in msg
    assert f"{server}/good/train-images-idx3-ubyte.gz" in msg
    assert leftovers(cache / "kmnist") == []


def test_load_dataset_with_an_unreachable_mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNZOO_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNZOO_MIRROR", "http://127.0.0.1:9/")  # the discard port: refused at once
    with pytest.raises(DataError, match=r"could not download train-images-idx3-ubyte.gz"):
        load_dataset("mnist", data_dir=tmp_path / "mine")
    assert leftovers(tmp_path / "mine") == []
