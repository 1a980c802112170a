"""Who may write a run directory, and names for new runs that cannot be guessed.

One writer per run: :func:`run_lock` holds an advisory lock (``fcntl.flock``) on ``RUN/.lock``, which holds
the writer's pid, for as long as it trains. The kernel releases the lock when the process ends, however it
ends (``kill -9`` included), so a lock is never stale; the pid in the file only names the holder.
A second ``cnnzoo train --resume``, a second web trainer or a restarted server asks :func:`lock_holder` and
gets the live pid instead of writing beside it.

:func:`new_run_name` gives ``BASE-YYYYmmdd-HHMMSS-XXXXXXXX``: the random tail (32 bits from ``secrets``)
means a page that may not list the runs cannot guess one from the time it was started.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CnnzooError

__all__ = ["LOCK", "RunBusyError", "run_lock", "lock_holder", "new_run_name"]

LOCK = ".lock"


class RunBusyError(CnnzooError):
    """Another live process is writing this run directory."""

    def __init__(self, run: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"run {run} is being trained by {who}; wait for it or stop it first")
        self.pid = pid


def new_run_name(base: str) -> str:
    """``BASE-YYYYmmdd-HHMMSS-<8 random hex digits>``; ``base`` (a model argument may be a layer string or
    a file's ``PATH.py:NAME``) is cut to 60 characters of ``[A-Za-z0-9._-]``."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:60]
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _open_lock(run: Path, create: bool) -> int | None:
    path = run / LOCK
    flags = os.O_RDWR | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0) | (os.O_CREAT if create else 0)
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CnnzooError(f"cannot open {path}: {e.strerror or e}") from None


def lock_holder(run: str | os.PathLike) -> int | None:
    """The pid of the live process that holds ``run``'s lock (0 when it wrote none yet), or None when no
    process does."""
    import fcntl

    fd = _open_lock(Path(run), create=False)
    if fd is None:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def run_lock(run: str | os.PathLike) -> Iterator[None]:
    """Hold ``run``'s writer lock (creating the folder) while the block runs; :class:`RunBusyError` when a
    live process holds it."""
    import fcntl

    run = Path(run)
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CnnzooError(f"cannot create output directory {run}: {e.strerror or e}") from None
    fd = _open_lock(run, create=True)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusyError(run, _read_pid(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
