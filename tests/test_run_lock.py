"""One writer per run directory whoever writes it, with real processes: a notebook's ``cnnzoo.fit(out=...)``
refuses a second fit and ``cnnzoo train --resume`` of its run and is refused beside them; the command line
does not lock itself out; a lock is free once its holder is gone, ``kill -9`` included; the web trainer's
run has its holder from the moment the server starts it (a lock handed to the child).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cli_harness import assert_clear_error
from helpers import fashion_available, synthetic

from cnnzoo import fit
from cnnzoo.rundir import RunBusyError, lock_for_child, lock_holder, run_lock
from cnnzoo.web.train_jobs import Trainer, running_trainers

needs_fashion = pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST files not found")
ENV = os.environ | {"OMP_NUM_THREADS": "1"}
CLI_TRAIN = [sys.executable, "-m", "cnnzoo", "train", "lenet5_modern", "--limit", "320", "--batch-size", "64"]
CLI_TRAIN += ["--quiet", "--threads", "1"]

# a notebook's fit on a few hundred Fashion-MNIST images; CnnzooError as the CLI prints it: one line, exit 2
FIT = textwrap.dedent(
    """
    import sys
    from cnnzoo import fit
    from cnnzoo.errors import CnnzooError
    out, epochs, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "resume"
    try:
        fit("lenet5_modern", "fashion-mnist", out=out, epochs=epochs, resume=resume, limit=320,
            batch_size=64, threads=1, progress=False)
    except CnnzooError as e:
        print(e, file=sys.stderr)
        sys.exit(2)
    """
)


def _fit(out: Path, epochs: int, resume: bool = False) -> list[str]:
    return [sys.executable, "-c", FIT, str(out), str(epochs), "resume" if resume else "new"]


def _wait_for(predicate, seconds: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _holding(command: list[str], out: Path) -> subprocess.Popen:
    """``command`` started and trained past its first epoch (its lock taken, its run directory written)."""
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (out / "metrics.jsonl").exists() or proc.poll() is not None, what="epoch 1")
    assert proc.poll() is None, proc.stderr.read()[-800:]
    assert lock_holder(out) == proc.pid
    return proc


def _one_line_refusal(done: subprocess.CompletedProcess, pid: int) -> None:
    assert done.returncode == 2, done.stderr[-800:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"is being trained by pid {pid}" in lines[0], done.stderr[-800:]


@pytest.mark.slow
@needs_fashion
def test_a_second_library_fit_is_refused_and_kill_9_frees_the_lock(tmp_path):
    out = tmp_path / "run"
    first = _holding(_fit(out, 10_000), out)
    try:
        config = (out / "config.json").read_bytes()
        second = subprocess.run(_fit(out, 1), env=ENV, capture_output=True, text=True, timeout=300)
        _one_line_refusal(second, first.pid)
        assert (out / "config.json").read_bytes() == config  # the second wrote nothing
        resumed = subprocess.run(_fit(out, 1, True), env=ENV, capture_output=True, text=True, timeout=300)
        _one_line_refusal(resumed, first.pid)
        assert first.poll() is None  # the first goes on, undisturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(60)
    assert lock_holder(out) is None  # the kernel released it with the process
    with run_lock(out):
        assert lock_holder(out) == os.getpid()


@pytest.mark.slow
@needs_fashion
def test_cli_resume_is_refused_while_a_library_fit_holds_the_run(tmp_path):
    out = tmp_path / "run"
    first = _holding(_fit(out, 10_000), out)
    try:
        second = subprocess.run(
            CLI_TRAIN + ["--resume", "--out", str(out)], env=ENV, capture_output=True, text=True, timeout=300
        )
        assert_clear_error(second.returncode, second.stderr, "train", f"is being trained by pid {first.pid}")
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)
    assert lock_holder(out) is None


@pytest.mark.slow
@needs_fashion
def test_library_fit_is_refused_while_the_cli_trains_the_run(tmp_path):
    out = tmp_path / "run"
    first = _holding(CLI_TRAIN + ["--epochs", "10000", "--out", str(out)], out)  # the CLI holds its own lock
    try:
        second = subprocess.run(_fit(out, 1, True), env=ENV, capture_output=True, text=True, timeout=300)
        _one_line_refusal(second, first.pid)
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)
    assert lock_holder(out) is None
    done = subprocess.run(  # and resumes its own run
        CLI_TRAIN + ["--resume", "--epochs", "2", "--out", str(out)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "test accuracy" in done.stdout, done.stderr[-800:]


def test_fit_is_refused_inside_a_lock_of_its_own_process(tmp_path):
    out = tmp_path / "run"
    with run_lock(out), pytest.raises(RunBusyError, match=f"by pid {os.getpid()}"):
        fit("lenet5_modern", synthetic(64, 32), out=str(out), epochs=1, progress=False, threads=1)
    assert not (out / "config.json").exists()


def test_a_handed_lock_is_the_childs_alone(tmp_path):
    out = tmp_path / "run"
    child = textwrap.dedent(
        """
        import sys, time
        from cnnzoo.rundir import run_lock
        with run_lock(sys.argv[1]):
            print("locked", flush=True)
            sys.stdin.readline()
        """
    )
    with lock_for_child(out) as handed:
        assert lock_holder(out) == 0  # held before the child exists
        proc = subprocess.Popen(
            [sys.executable, "-c", child, str(out)],
            env=ENV | handed.env,
            pass_fds=(handed.fd,),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        handed.started(proc.pid)
        assert lock_holder(out) == proc.pid
    try:
        assert proc.stdout.readline() == "locked\n"  # it took the lock it was handed, not refused
        assert lock_holder(out) == proc.pid
        with pytest.raises(RunBusyError, match=f"by pid {proc.pid}"):
            with run_lock(out):
                pass
    finally:
        proc.stdin.close()
        proc.wait(60)
    assert lock_holder(out) is None


@needs_fashion
def test_the_web_trainer_holds_its_run_from_the_start(tmp_path):
    runs = tmp_path / "runs"
    trainer = Trainer()
    job = trainer.start({"model": "lenet5_modern", "epochs": 1, "limit": 320}, runs)
    pid = trainer.job.process.pid
    assert running_trainers(runs) == [(job["id"], pid)]  # a restarted server would see it already
    assert trainer.job.process.wait(300) == 0, (runs / job["id"] / "train.log").read_text()[-800:]
    assert (runs / job["id"] / "result.json").is_file()  # the child trained under the lock it was handed
    assert lock_holder(runs / job["id"]) is None
