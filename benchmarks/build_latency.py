"""The Build page's latency in a real Chromium: from an edit of the layer string to the updated table, diagram
and total on screen (the request to /api/build/check, the rendering and the next frame), with the part the
server spent (its Server-Timing header) and the request's round trip. Then seed 004's net trained for one Fashion-MNIST epoch from the page (its Start button) and from
the command line, with the same recipe and thread count.

    python benchmarks/build_latency.py [--edits 40] [--no-train]

The server is ``python -m cnnzoo serve`` in its own process, as users run it. Each edit writes a net not
seen before (the page keeps answers it has had), so every one is a round trip.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SEED_004 = "1x28x28-32C3-MP2-64C3-MP2-128C3-MP2-64N-10N"
NETS = {  # name -> (the net, how edit i changes it)
    "seed 004 (1x28x28, 101,578 params)": (SEED_004, lambda i: SEED_004.replace("32C3", f"{17 + i}C3")),
    "ResNet-20 (3x32x32, 272,474 params)": (
        "3x32x32-16C3p1-BN-R16*3-R32s2-R32*2-R64s2-R64*2-GAP-10N",
        lambda i: f"3x32x32-{17 + i}C3p1-BN-R16*3-R32s2-R32*2-R64s2-R64*2-GAP-10N",
    ),
    "VGG-16 (3x224x224, 138,357,544 params)": (
        "3x224x224-64C3p1*2-MP2-128C3p1*2-MP2-256C3p1*3-MP2-512C3p1*3-MP2-512C3p1*3-MP2-4096N-D-4096N-D-1000N",
        lambda i: (
            f"3x224x224-{33 + i}C3p1-64C3p1-MP2-128C3p1*2-MP2-256C3p1*3-MP2-512C3p1*3-MP2-512C3p1*3-MP2"
            "-4096N-D-4096N-D-1000N"
        ),
    ),
}
# In the page: type `text` into the box, wait until the page has drawn its answer, then for the next frame.
EDIT = """async (text) => {
  const box = document.querySelector('[data-testid="net-string"]');
  const t0 = performance.now();
  box.value = text;
  box.dispatchEvent(new Event("input", { bubbles: true }));
  await new Promise((done) => {
    if (document.body.dataset.rendered === text) return done();
    const watch = new MutationObserver(() => {
      if (document.body.dataset.rendered === text) { watch.disconnect(); done(); }
    });
    watch.observe(document.body, { attributes: true, attributeFilter: ["data-rendered"] });
  });
  await new Promise((done) => requestAnimationFrame(() => done()));
  const total = performance.now() - t0;
  const req = performance.getEntriesByType("resource").filter((e) => e.name.includes("/api/build/check")).pop();
  const server = req && req.serverTiming.length ? req.serverTiming[0].duration : NaN;
  return [total, req ? req.responseEnd - req.startTime : NaN, server];
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(runs: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnzoo", "serve", "--port", str(port), "--runs-dir", str(runs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(300):
        try:
            httpx.get(url + "/api/build/starts", timeout=30)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def latency(page, url: str, edits: int) -> None:
    from playwright.sync_api import expect

    print(
        "| net | edits | p50 ms | p95 ms | max ms | round trip p50 / p95 ms | server p50 / p95 ms |\n"
        "|---|---|---|---|---|---|---|"
    )
    for name, (net, edit) in NETS.items():
        page.goto(f"{url}/build?net={net}&lang=en")
        expect(page.locator("body")).to_have_attribute("data-rendered", net, timeout=60_000)
        page.evaluate(EDIT, edit(edits + 1))  # a first round trip: the server's first read of this shape
        rows = [page.evaluate(EDIT, edit(i)) for i in range(edits)]
        ms, trip, server = ([r[k] for r in rows] for k in range(3))
        print(
            f"| {name} | {edits} | {percentile(ms, 0.5):.1f} | {percentile(ms, 0.95):.1f} | {max(ms):.1f} | "
            f"{percentile(trip, 0.5):.1f} / {percentile(trip, 0.95):.1f} | "
            f"{percentile(server, 0.5):.1f} / {percentile(server, 0.95):.1f} |"
        )


def epoch_from_page(page, url: str, runs: Path) -> dict:
    page.goto(f"{url}/build?net={SEED_004}&lang=en")
    page.get_by_test_id("train-this").click()
    page.wait_for_selector("select[name=dataset] option", state="attached")
    page.select_option("select[name=dataset]", "fashion-mnist")
    page.fill("input[name=epochs]", "1")
    page.get_by_test_id("train-start").click()
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        found = list(runs.glob("*/result.json"))
        if found:
            return json.loads(found[0].read_text())
        time.sleep(2)
    raise SystemExit("the page's run did not finish within an hour")


def epoch_from_cli(out: Path) -> dict:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cnnzoo",
            "train",
            SEED_004,
            "--dataset",
            "fashion-mnist",
            "--epochs",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads((out / "result.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edits", type=int, default=40)
    parser.add_argument("--no-train", action="store_true", help="only the latency")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} at the start"
    )
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        runs = Path(tmp) / "runs"
        runs.mkdir()
        server, url = start_server(runs)
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            latency(page, url, args.edits)
            if not args.no_train:
                rows = [
                    ("page", epoch_from_page(page, url, runs)),
                    ("CLI", epoch_from_cli(Path(tmp) / "cli")),
                ]
                print("\n| from | train s | images/s | test accuracy | threads |\n|---|---|---|---|---|")
                for where, r in rows:
                    print(
                        f"| {where} | {r['train_seconds']:.1f} | {r['train_images_per_second']:,.0f} | "
                        f"{r['test_accuracy']:.4f} | {r['threads']} |"
                    )
            browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
