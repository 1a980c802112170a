"""Shared test fixtures that are plain functions: small learnable datasets, and what is on this machine."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from cnnzoo.data import ImageDataset, channel_stats


def synthetic(n_train=512, n_test=256, channels=1, size=28, seed=0, name="synthetic") -> ImageDataset:
    """10 classes: a bright 6×6 square whose position is the class, on noise. Learnable in an epoch or two."""
    g = torch.Generator().manual_seed(seed)

    def make(n):
        y = torch.randint(0, 10, (n,), generator=g)
        x = torch.randint(0, 60, (n, channels, size, size), generator=g, dtype=torch.uint8)
        for i, c in enumerate(y.tolist()):
            r, col = 2 + (c // 5) * 12, 2 + (c % 5) * 5
            x[i, :, r : r + 6, col : col + 6] = 230
        return x, y

    tx, ty = make(n_train)
    vx, vy = make(n_test)
    mean, std = channel_stats(tx)
    return ImageDataset(name, tx, ty, vx, vy, [f"c{i}" for i in range(10)], mean, std)


FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist package
# The class names of Zalando's README (github.com/zalandoresearch/fashion-mnist), written here, not read from us
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def fashion_available() -> bool:
    """Whether the real Fashion-MNIST files are on this machine (Debian's package or the cache)."""
    try:
        from cnnzoo.data import load_dataset

        load_dataset("fashion-mnist", download=False)
        return True
    except Exception:
        return False


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """A real uvicorn server for ``app`` in a thread, on a free port of 127.0.0.1; yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


# i18n.js run as a browser would, with the few globals it touches at load stubbed: its two string tables.
_I18N_NODE = """
const vm = require("vm"), fs = require("fs");
const none = () => null, nodes = () => [];
const document = {querySelector: none, querySelectorAll: nodes, documentElement: {}, createElement: none};
const ctx = {document, location: {search: "", href: "http://x/"}, URLSearchParams, URL, Node: {TEXT_NODE: 3},
             localStorage: {getItem: none, setItem: none}, history: {}, CustomEvent: Object};
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8") + ";globalThis.__strings = STRINGS;", ctx);
process.stdout.write(JSON.stringify(ctx.__strings));
"""


def i18n_strings(tmp_path: Path) -> dict[str, dict[str, str]]:
    """The web pages' string tables (``STRINGS.en``, ``STRINGS.zh`` of i18n.js), read by Node."""
    import json
    import subprocess

    from cnnzoo.web.pages import STATIC

    script = tmp_path / "i18n-strings.js"
    script.write_text(_I18N_NODE)
    run = subprocess.run(
        ["node", str(script), str(STATIC / "i18n.js")], capture_output=True, text=True, check=True
    )
    return json.loads(run.stdout)
