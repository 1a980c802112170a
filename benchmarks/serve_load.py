"""Load test for ``cnnzoo serve``: N concurrent clients POST a drawing to /api/predict on loopback for a
bounded time; prints requests/s and latency percentiles.

    python benchmarks/serve_load.py [--checkpoint RUN_DIR] [--clients 1 4 16] [--seconds 10]
                                    [--endpoint predict|feature-maps]
    python benchmarks/serve_load.py --contention [--repeat 3] [--seconds 5]

``--contention``: one client, the server quiet and with one and two CPU-bound competitors (Python busy loops
started here), in turn within each repetition; p50 as a multiple of the quiet p50.

The server runs in its own process (``python -m cnnzoo serve``, one uvicorn worker, as users run it), so
the clients' threads do not share its interpreter lock. Without --checkpoint the server uses an untrained
lenet5_modern (as fast as a trained one, unless that one was trained with the test-time flip, which runs the
net twice per image: ``cnnzoo train lenet5_modern``'s recipe does).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import httpx
from PIL import Image, ImageDraw


@dataclass
class Result:
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: int = 0

    def percentile(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    def row(self) -> str:
        rps = len(self.latencies) / self.seconds
        return (
            f"| {self.clients} | {len(self.latencies)} | {rps:.0f} | {1000 * self.percentile(0.5):.1f} | "
            f"{1000 * self.percentile(0.99):.1f} | {self.errors} |"
        )


def drawing_png() -> bytes:
    """A 280×280 black-on-white stroke, what the predict page sends."""
    img = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(img).line([(90, 60), (190, 60), (120, 230)], fill=0, width=20)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoint: str | None, port: int, runs_dir: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cnnzoo", "serve", "--port", str(port), "--runs-dir", runs_dir]
    if checkpoint:
        cmd += ["--checkpoint", checkpoint]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=1).raise_for_status()
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start within 60 s")


def drive(url: str, clients: int, seconds: float, body: bytes) -> Result:
    result = Result(clients, seconds)
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(timeout=30) as http:  # one keep-alive connection per client, like a browser tab
            while time.monotonic() < stop:
                t = time.perf_counter()
                try:
                    ok = http.post(url, files={"file": ("d.png", body, "image/png")}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                dt = time.perf_counter() - t
                with lock:
                    if ok:
                        result.latencies.append(dt)
                    else:
                        result.errors += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return result


def contention(url: str, body: bytes, seconds: float, repeat: int) -> None:
    p50: dict[int, list[float]] = {0: [], 1: [], 2: []}
    p99: dict[int, list[float]] = {0: [], 1: [], 2: []}
    loads = []
    for _ in range(repeat):
        for competitors in p50:
            spinners = [
                subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(competitors)
            ]
            try:
                time.sleep(0.5)
                r = drive(url, 1, seconds, body)
            finally:
                for s in spinners:
                    s.kill()
                    s.wait()
            p50[competitors].append(1000 * r.percentile(0.5))
            p99[competitors].append(1000 * r.percentile(0.99))
            loads.append(os.getloadavg()[0])
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    print(
        f"{cpu} ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d %H:%M')}, 1 client, {seconds:g} s per cell, "
        f"median of {repeat} interleaved repetitions, load average {min(loads):.1f}-{max(loads):.1f}\n"
    )
    print("| competitors | p50 ms | p99 ms | p50 vs quiet |\n|---|---|---|---|")
    quiet = statistics.median(p50[0])
    for c in p50:
        m = statistics.median(p50[c])
        print(f"| {c} | {m:.1f} | {statistics.median(p99[c]):.1f} | **{m / quiet:.2f}×** |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="run directory to serve (default: an untrained lenet5_modern)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--endpoint", choices=["predict", "feature-maps"], default="predict")
    p.add_argument("--contention", action="store_true", help="1 client: quiet vs 1 and 2 busy competitors")
    p.add_argument("--repeat", type=int, default=3, help="--contention: interleaved repetitions")
    args = p.parse_args()

    port = free_port()
    with tempfile.TemporaryDirectory() as empty_runs:
        proc = start_server(args.checkpoint, port, empty_runs)
        try:
            url = f"http://127.0.0.1:{port}/api/{args.endpoint}"
            body = drawing_png()
            drive(url, 1, 1.0, body)  # warm-up: first-request costs (tracing, dataset load) are not load
            if args.contention:
                return contention(url, body, args.seconds, args.repeat)
            print(
                f"POST /api/{args.endpoint}, 280×280 PNG drawing, {args.seconds:g} s per row, "
                f"{os.cpu_count()} CPU cores, server: 1 uvicorn process"
            )
            print("| clients | requests | req/s | p50 ms | p99 ms | errors |")
            print("|---|---|---|---|---|---|")
            for n in args.clients:
                print(drive(url, n, args.seconds, body).row(), flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
