"""Every command's bad arguments: one clear line on stderr, exit code 2, never a traceback."""

import subprocess
import sys

import pytest

from cnnzoo.cli import build_parser


def _commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnnzoo", *args], capture_output=True, text=True, timeout=120
    )


def test_every_issue_command_is_there():
    assert {"summary", "models", "train", "eval", "predict", "data", "export", "serve", "experiment"} <= set(
        _commands()
    )


@pytest.mark.parametrize("command", _commands())
def test_unknown_option_exits_2_without_traceback(command):
    proc = _run(command, "--no-such-option")
    assert proc.returncode == 2
    # one line (no usage dump); a command with a required argument names that first
    assert "unrecognized arguments: --no-such-option" in proc.stderr or "are required" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and f"cnnzoo {command} --help" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_command_and_no_command():
    proc = _run("trian")
    assert proc.returncode == 2 and "invalid choice: 'trian'" in proc.stderr
    assert _run().returncode == 2


def test_missing_file_is_one_line():
    proc = _run("eval", "/no/such/run")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
