"""Who may write a run directory, and names for new runs that cannot be guessed.

One writer per run: :func:`run_lock` holds an advisory lock (``fcntl.flock``) on ``RUN/.lock``, which holds
the writer's pid, for as long as it trains. The kernel releases the lock when the process ends, however it
ends (``kill -9`` included), so a lock is never stale; the pid in the file only names the holder.
``fit`` takes it for as long as it writes a run directory, so the command line, the web trainer and a
notebook's ``cnnzoo.fit(out=...)`` all go through it: a second writer gets :class:`RunBusyError`, and a
restarted server asks :func:`lock_holder` and gets the live pid instead of writing beside it.
:func:`lock_for_child` takes the lock before a child process starts and hands it over (the descriptor is
inherited; the child's :func:`run_lock` holds that very lock), so a run has its holder from before its
trainer exists until the trainer ends.

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

__all__ = ["LOCK", "RunBusyError", "HandedLock", "run_lock", "lock_for_child", "lock_holder", "new_run_name"]

LOCK = ".lock"
HANDED_ENV = "CNNZOO_RUN_LOCK_FD"  # the descriptor number of a lock handed to this process by its parent
_handed: dict[tuple[int, int], int] | None = None  # (device, inode) of a handed lock file -> its descriptor


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


def _lock(run: Path) -> int:
    """A descriptor of ``run``'s lock file that holds its lock (the folder created), or :class:`RunBusyError`."""
    import fcntl

    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CnnzooError(f"cannot create output directory {run}: {e.strerror or e}") from None
    fd = _take_handed(_open_lock(run, create=True))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a handed descriptor holds it already: a no-op
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise RunBusyError(run, pid) from None
    return fd


def _take_handed(fd: int) -> int:
    """The descriptor this process's parent handed over for the same lock file as ``fd`` (which is then
    closed), taken once; else ``fd``."""
    global _handed
    if _handed is None:
        _handed, text = {}, os.environ.pop(HANDED_ENV, "")
        if text.isdigit():
            try:
                st = os.fstat(int(text))
                os.set_inheritable(int(text), False)  # for this process alone, not the ones it starts
                _handed[(st.st_dev, st.st_ino)] = int(text)
            except OSError:
                pass
    st = os.fstat(fd)
    handed = _handed.pop((st.st_dev, st.st_ino), None)
    if handed is None:
        return fd
    os.close(fd)
    return handed


def _write_pid(fd: int, pid: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid}\n".encode(), 0)


@contextmanager
def run_lock(run: str | os.PathLike) -> Iterator[None]:
    """Hold ``run``'s writer lock (creating the folder) while the block runs; :class:`RunBusyError` when a
    live process holds it (this one included, outside a lock its parent handed to it)."""
    fd = _lock(Path(run))
    try:
        _write_pid(fd, os.getpid())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


class HandedLock:
    """A run's lock taken for a child process: start it with ``pass_fds=(handed.fd,)`` and ``env=... |
    handed.env``, then call :meth:`started` with its pid."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.env = {HANDED_ENV: str(fd)}

    def started(self, pid: int) -> None:
        """Name the child as the holder (it writes its pid again when its :func:`run_lock` takes over)."""
        _write_pid(self.fd, pid)


@contextmanager
def lock_for_child(run: str | os.PathLike) -> Iterator[HandedLock]:
    """Take ``run``'s writer lock for a child process started in the block; this process's descriptor is
    closed when the block ends, and the lock is the child's until it ends (or released at once if none was
    started). :class:`RunBusyError` when a live process holds it."""
    fd = _lock(Path(run))
    try:
        os.ftruncate(fd, 0)  # no pid yet: lock_holder says 0 until the child's is written
        yield HandedLock(fd)
    finally:
        os.close(fd)
