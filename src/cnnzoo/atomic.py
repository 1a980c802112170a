"""Durable and atomic file writes, shared by checkpoints, exports and run outputs: the one atomic writer.

``write_durable`` writes bytes and fsyncs them, removing the partial file if anything fails (full disk, no
permission). ``atomic_write`` does that to a temporary file of its own (``tempfile.mkstemp`` in the target's
folder: two writers of one name never share one) and renames it over ``NAME``: readers see the old file or
the new one, never half of one, and a crash or a full disk leaves the old file in place. Only a regular file
is ever replaced: a device node (``/dev/null``), a FIFO, a directory or a symlink at ``NAME`` is refused
(:func:`check_replaceable`), since renaming over it would replace the device or the link for everyone.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import CnnzooError

__all__ = ["write_durable", "atomic_write", "check_replaceable", "shown_path"]

_UMASK = os.umask(0o022)  # read once, while importing (os.umask has no read-only form)
os.umask(_UMASK)

_KINDS = (
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def shown_path(path: str | os.PathLike) -> str:
    """``path`` printable on one line in any terminal: a name that is not UTF-8 (surrogate escapes) shows its
    bytes as ``\\xNN``."""
    text = os.fsdecode(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_replaceable(path: str | os.PathLike, error: type[CnnzooError] = CnnzooError) -> None:
    """Raise ``error`` unless ``path`` is absent or a regular file (checked without following a link)."""
    if os.fsdecode(path) == "":
        raise error("no output path given (an empty name)")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise error(f"cannot write {shown_path(path)}: {e.strerror or e}") from None
    for is_kind, kind in _KINDS:
        if is_kind(mode):
            raise error(
                f"{shown_path(path)} is {kind}: cnnzoo replaces only regular files; choose another name"
            )


def write_durable(
    path: Path, data: bytes, error: type[CnnzooError] = CnnzooError, fsync: bool = True
) -> None:
    """Write ``data`` to ``path`` and fsync it (unless ``fsync=False``); on failure remove the partial file
    and raise ``error``."""
    try:
        with open(path, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    except OSError as e:
        path.unlink(missing_ok=True)
        raise error(f"cannot write {shown_path(path)}: {e.strerror or e}") from None


def atomic_write(path: Path, data: bytes, error: type[CnnzooError] = CnnzooError, fsync: bool = True) -> None:
    """Replace ``path`` (absent or a regular file) with ``data`` through a temp file of this writer's own +
    rename (creating the parent folder). Without ``fsync`` a power cut may lose the new content, but never
    leaves a half-written file. On any failure only this writer's temp file is removed."""
    check_replaceable(path, error)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise error(f"cannot write {shown_path(path)}: {e.strerror or e}") from None
    try:
        with open(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it 0o600; a plain open() would honour the umask
        check_replaceable(path, error)  # a link or device put there while we wrote
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise error(f"cannot write {shown_path(path)}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
