"""Options with ranges: a batch size, limit, top-k, opset, tolerance, port or thread count out of range is
refused by the parser with one line naming the option, before anything is read or served; a ``serve`` that
cannot bind (a port in use, a host that does not resolve) is one line and never prints its URL."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from hardening_harness import assert_one_line

from cnnzoo.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "x", "--batch-size", "0"],
        ["eval", "x", "--batch-size", "-1"],
        ["eval", "x", "--limit", "0"],
        ["eval", "x", "--limit", "-5"],
        ["predict", "x", "y", "--top-k", "0"],
        ["export", "x", "--out", "y", "--opset", "0"],
        ["export", "x", "--out", "y", "--atol", "nan"],
        ["export", "x", "--out", "y", "--atol", "-1"],
        ["serve", "--port", "99999"],
        ["serve", "--port", "-1"],
        ["serve", "--threads", "-4"],
    ],
)
def test_numeric_options_have_ranges(capsys, monkeypatch, argv):
    import uvicorn

    for target, name in ((uvicorn, "run"), (uvicorn.Server, "run")):  # an accepted option must not serve
        monkeypatch.setattr(target, name, lambda *a, **k: pytest.fail("the option was accepted"))
    with pytest.raises(SystemExit) as e:  # refused by the parser, before anything is read
        main(argv)
    code = e.value.code
    _, err = capsys.readouterr()
    assert_one_line(code, err, argv[0], f"argument {argv[-2]}")


@pytest.mark.parametrize("case", ["port in use", pytest.param("bad host", marks=pytest.mark.slow)])
def test_serve_bind_failure_is_one_line_and_no_url(case):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        host = "127.0.0.1" if case == "port in use" else "no-such-host.invalid"
        argv = [sys.executable, "-m", "cnnzoo", "serve", "--host", host, "--port", str(port)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert_one_line(proc.returncode, proc.stderr, "serve")
    assert "open http" not in proc.stdout
