"""Durable and atomic file writes, shared by checkpoints, exports and run outputs.

``write_durable`` writes bytes and fsyncs them, removing the partial file if anything fails (full disk, no
permission). ``atomic_write`` does that to ``NAME.tmp`` and renames it over ``NAME``: readers see the old file
or the new one, never half of one, and a crash or a full disk leaves the old file in place.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CnnzooError


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
        raise error(f"cannot write {path}: {e.strerror or e}") from None


def atomic_write(path: Path, data: bytes, error: type[CnnzooError] = CnnzooError, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` through a temp file + rename (creating the parent folder). Without
    ``fsync`` a power cut may lose the new content, but never leaves a half-written file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise error(f"cannot create {path.parent}: {e.strerror or e}") from None
    tmp = path.with_name(path.name + ".tmp")
    write_durable(tmp, data, error, fsync)
    try:
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise error(f"cannot write {path}: {e.strerror or e}") from None
