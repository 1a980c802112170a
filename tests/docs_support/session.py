"""Runs the docs' commands the way a reader would, in one scratch directory per test session.

Every command runs verbatim through bash (pipefail on, output piped, stderr merged into stdout), in a folder
that has `.venv` linked to this checkout's virtual env, with that env's `bin` first on PATH. What a reader's
machine has and this one does not is replaced here, each case listed once (`SKIPS`, `adapt`):

- `cnnzoo train ...` gets `--limit 2000 --epochs 1` appended (a smoke run; later flags win in argparse).
- `RUN` and `runs/lenet5_modern-TIMESTAMP` become the newest run directory that an earlier documented
  `cnnzoo train lenet5_modern` made in this session (or, when this process did not run that command, one
  this session trains with it); `shoe.png` and `image.png` are generated images.
- `cnnzoo serve` gets a free `--port`; it passes when its page answers, and is then stopped.
- Commands needing CUDA run only where CUDA is present; a skip says why and pytest lists it (-ra).
- Weight downloads (`cnnzoo weights fetch/path/import`) are skipped: no network; the store is empty here.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import unittest
import urllib.request
from collections import defaultdict
from pathlib import Path

from sybil import Example

from docs_support.console import Command, merge_for_update, normalise, output_matches

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent  # the env running the tests is the one the docs' commands use
TRAIN_SHORTENING = " --limit 2000 --epochs 1"
COMMAND_TIMEOUT_S = 300

# Commands that cannot run here at all, by a pattern on the command; the reason is shown by pytest.
SKIPS = {
    r"^pip install -e \.": "installs cnnzoo; the tests already run inside the installed package",
    r"\bNAME\b|\[--": "a synopsis (placeholders and [optional] flags), not a command",
    r"^(?!CNNZOO_OFFLINE=1 ).*\bcnnzoo weights (fetch|path|import)\b": (
        "needs torchvision's weight files from download.pytorch.org; the tests have no network"
    ),
    r"--weights imagenet\b": "needs torchvision's weight files from download.pytorch.org; the tests have no network",
}
RUN_PLACEHOLDER = re.compile(r"(?<![\w/-])(RUN|runs/lenet5_modern-TIMESTAMP)(?![\w/-])")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class DocSession:
    """The scratch directory, the outputs already seen (a command shared by two docs runs once) and, in update
    mode (CNNZOO_DOCS_UPDATE=1), the documented outputs to rewrite when the session ends."""

    def __init__(self, workdir: Path, update: bool) -> None:
        self.workdir = workdir
        self.update = update
        self.results: dict[str, tuple[int, str]] = {}
        self.rewrites: dict[str, list[tuple[tuple[int, int], str]]] = defaultdict(list)
        (workdir / ".venv").symlink_to(VENV)
        self.env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
        self.env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["OMP_NUM_THREADS"] = "1"  # 2 shared cores; the docs' outputs do not depend on threads
        # an empty weights store and torch.hub cache: the docs show what a new user sees, and write nothing
        # into this machine's real stores
        self.env["CNNZOO_WEIGHTS"] = str(workdir / "weights")
        self.env["TORCH_HOME"] = str(workdir / "torch")
        _write_images(workdir)

    # -- the sybil evaluator -----------------------------------------------------------------------------------
    def evaluate(self, example: Example) -> str | None:
        command: Command = example.parsed
        code = self.adapt(command.code)
        if code.startswith("serve:"):
            return self._serve(code.removeprefix("serve:"))
        if code not in self.results:
            self.results[code] = self._run(code)
        status, output = self.results[code]
        doc = Path(example.path)
        where = f"{doc.relative_to(REPO) if doc.is_relative_to(REPO) else doc}, line {example.line}: $ {command.line}"
        if status != command.exit_status:
            return f"{where}\nexit status {status}, expected {command.exit_status}; output:\n{output}"
        if not command.expected.strip() or output_matches(command.expected, output):
            return None
        if self.update:
            self._record_rewrite(example.path, command, output)
            return None
        return (
            f"{where}\nthe documented output changed (CNNZOO_DOCS_UPDATE=1 rewrites it)\n"
            f"--- documented\n{normalise(command.expected)}\n--- actual\n{normalise(output)}"
        )

    def adapt(self, code: str) -> str:
        for pattern, reason in SKIPS.items():
            if re.search(pattern, code):
                raise unittest.SkipTest(reason)
        words = code.split()
        if "--device" in words and words[words.index("--device") + 1].startswith("cuda") and not _cuda():
            raise unittest.SkipTest(f"needs a CUDA device, none here: {code}")
        if RUN_PLACEHOLDER.search(code):
            code = RUN_PLACEHOLDER.sub(self._latest_run(), code)
        if re.search(r"\bcnnzoo train\b", code):
            if "|" in code:
                raise AssertionError(f"a piped training command cannot be shortened: {code}")
            code += TRAIN_SHORTENING
        if re.search(r"\bcnnzoo serve\b", code):
            self._latest_run()  # the docs serve after training: the app loads the newest run
            return "serve:" + code
        return code

    def _latest_run(self) -> str:
        runs = sorted((self.workdir / "runs").glob("lenet5_modern-*"), key=lambda p: p.stat().st_mtime)
        if not runs:
            # this process did not get README's `cnnzoo train lenet5_modern` (pytest -k, or xdist gave it to
            # another worker): run it here, shortened like every documented training
            status, output = self._run("cnnzoo train lenet5_modern" + TRAIN_SHORTENING)
            assert status == 0, f"RUN: training the run to stand in for it failed:\n{output}"
            return self._latest_run()
        return str(runs[-1].relative_to(self.workdir))

    def _run(self, code: str) -> tuple[int, str]:
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", code],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        return done.returncode, done.stdout

    def _serve(self, code: str) -> str | None:
        port = _free_port()
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {code} --port {port}"],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as page:
                        if page.status == 200:
                            return None
                except OSError:
                    time.sleep(0.5)
            proc.terminate()
            output = proc.communicate(timeout=20)[0]
            return f"$ {code}: no page at port {port} within 60 s (exit status {proc.returncode}):\n{output}"
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.communicate(timeout=20)

    # -- update mode -------------------------------------------------------------------------------------------
    def _record_rewrite(self, path: str, command: Command, output: str) -> None:
        text = merge_for_update(command.expected, output)
        new = f"\n{text}\n\n" if command.markdown else f"{text}\n"
        self.rewrites[path].append((command.output_span, new))

    def write_rewrites(self) -> list[str]:
        for path, edits in self.rewrites.items():
            text = Path(path).read_text(encoding="utf-8")
            for (start, end), new in sorted(edits, reverse=True):
                text = text[:start] + new + text[end:]
            Path(path).write_text(text, encoding="utf-8")
        return sorted(self.rewrites)


def _write_images(folder: Path) -> None:
    """shoe.png (28×28, a light sneaker-like shape on black, as in Fashion-MNIST) and image.png (the same on a
    56×56 canvas, off centre), for the docs' predict commands."""
    import numpy as np
    from PIL import Image

    shoe = np.zeros((28, 28), np.uint8)
    shoe[14:22, 4:24] = 200  # sole and upper
    shoe[8:14, 14:24] = 170  # ankle
    Image.fromarray(shoe).save(folder / "shoe.png")
    canvas = np.zeros((56, 56), np.uint8)
    canvas[20:48, 6:34] = shoe
    Image.fromarray(canvas).save(folder / "image.png")
