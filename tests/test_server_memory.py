"""The server survives 20 concurrent pathological images — extreme aspect ratios both ways, the
largest image the decoder accepts, with and without ``fit`` — with its peak RSS growth bounded by its decoding queue, while a good
request is still answered within 1 s throughout. A real `cnnzoo serve` process, measured from outside."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the RSS from /proc")


def _png(width: int, height: int) -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("L", (width, height), 255)
    ImageDraw.Draw(im).line((0, 0, width - 1, height - 1), fill=0, width=3)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _post(port: int, data: bytes, fit: bool, timeout: float = 120) -> tuple[int, float]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="fit"\r\n\r\n{str(fit).lower()}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/predict",
        data=body,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status, time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, time.monotonic() - t0


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runs = tmp_path_factory.mktemp("empty-runs")  # no run: an untrained LeNet, which is all this needs
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnzoo", "serve", "--port", str(port), "--runs-dir", str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=2).read()
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.3)
    yield port, proc
    proc.terminate()
    proc.wait(timeout=30)


def test_twenty_pathological_images_at_once(served):
    port, proc = served
    good = _png(28, 28)
    assert _post(port, good, fit=True)[0] == 200  # warm: the first request loads the model's pieces
    before = _peak_rss_mb(proc.pid)
    shapes = [
        (1, 16_777_216),
        (16_777_216, 1),
        (4096, 4096),
        (64, 4096),
        (4096, 64),
        (16384, 256),
        (256, 16384),
        (2, 3000),
        (3000, 2),
        (4095, 4097),
    ]
    bad = [_png(w, h) for w, h in shapes]
    statuses: list[int] = []
    good_times: list[float] = []
    done = threading.Event()

    def attack(data: bytes, fit: bool) -> None:
        statuses.append(_post(port, data, fit)[0])

    threads = [threading.Thread(target=attack, args=(b, fit)) for b in bad for fit in (True, False)]
    assert len(threads) == 20
    for t in threads:
        t.start()

    def probe() -> None:
        while not done.is_set():
            status, seconds = _post(port, good, fit=True, timeout=30)
            assert status == 200
            good_times.append(seconds)
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    for t in threads:
        t.join(timeout=300)
    done.set()
    prober.join(timeout=60)

    assert proc.poll() is None, "the server died"
    assert len(statuses) == 20 and all(s in (200, 400, 413, 415, 422) for s in statuses), statuses
    peak = _peak_rss_mb(proc.pid)
    print(
        f"peak RSS {before:.0f} MB before, {peak:.0f} MB after; good requests during the attack: {len(good_times)}, "
        f"slowest {max(good_times):.3f} s; statuses {sorted(statuses)}"
    )
    # the bound comes from the design: at most MAX_DECODING big images decode at once, each a 16.7 M-pixel
    # image held as float32 (67 MB) with a copy or so while it is converted (160 MB); measured growth here
    # 340-580 MB (more when other processes keep the cores busy and the four decodes overlap longer)
    from cnnzoo.web.app import MAX_DECODING

    assert peak - before < MAX_DECODING * 160, f"peak RSS {before:.0f} MB before, {peak:.0f} MB after"
    assert good_times and max(good_times) < 1.0, good_times
