"""Reading files that users hand us, without trusting them: the regular-file check and the guarded
safetensors reader.

A path can name a FIFO (``open`` blocks until someone writes), a device (``/dev/zero`` never ends) or a
symlink to either; ``read_bytes()`` on such a path hangs or fills the memory. :func:`regular_file` refuses
anything but a regular file before it is opened, and :func:`open_regular` opens it without blocking and
checks again on the open descriptor (the path may have been swapped in between).

A safetensors file is 8 bytes of little-endian header length, a JSON header naming each tensor's dtype,
shape and byte range, then the data. :func:`read_header` reads and checks the header alone, against the
file's real size: a sparse 244 KB file declaring 10 GB of tensors is refused before any big read. The
caller compares the declared tensors with its model (names, shapes, dtypes) and only then calls
:func:`load_tensors`, which reads through safetensors' memory map.

This module is at the bottom of the package: it imports only cnnzoo.errors.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CheckpointError, CnnzooError

__all__ = [
    "regular_file",
    "open_regular",
    "sha256_file",
    "TensorInfo",
    "SafetensorsHeader",
    "read_header",
    "load_tensors",
    "DTYPE_BYTES",
]

CHUNK = 1 << 20
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit for the JSON header
# safetensors dtype -> bytes per element (the format's names, as its header spells them)
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
}


def regular_file(
    path: str | os.PathLike,
    name: str | None = None,
    error: type[CnnzooError] = CnnzooError,
    what: str = "a file",
    max_bytes: int | None = None,
) -> os.stat_result:
    """The ``stat`` of ``path`` if it is a regular file (following symlinks) of at most ``max_bytes``; else
    ``error`` naming it: never a FIFO, a device, a socket or a directory. ``what`` ends the messages
    ("is a directory, not an image")."""
    name = str(path) if name is None else name
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{name}: no such file") from None
    except OSError as e:
        raise error(f"{name}: cannot read ({e.strerror or e})") from None
    _check_stat(st, name, error, what, max_bytes)
    return st


def _check_stat(st: os.stat_result, name: str, error, what: str, max_bytes: int | None) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{name}: is a directory, not {what}")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{name}: not a regular file (a device, FIFO or socket), not {what}")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{name}: {st.st_size:,} bytes is more than the limit of {max_bytes:,} for {what}")


def open_regular(path: str | os.PathLike, error: type[CnnzooError] = CnnzooError, what: str = "a file"):
    """``open(path, "rb")`` for a regular file only: checked before opening, opened with ``O_NONBLOCK`` (a
    FIFO swapped in after the check cannot block) and checked again on the descriptor."""
    regular_file(path, error=error, what=what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        _check_stat(os.fstat(fd), str(path), error, what, None)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def sha256_file(path: str | os.PathLike, error: type[CnnzooError] = CnnzooError) -> str:
    """The SHA-256 of a regular file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    try:
        with open_regular(path, error) as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # the header's name: "F32", "I64", ...
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)  # the header's ``__metadata__``
    file_size: int = 0

    @property
    def data_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())


def read_header(path: str | os.PathLike, error: type[CnnzooError] = CheckpointError) -> SafetensorsHeader:
    """Read and check the header of the safetensors file ``path`` (a regular file): every tensor's dtype,
    shape and byte range, and that the ranges tile the data section, which ends where the file ends. Reads
    at most 8 bytes + the header; any defect -> ``error`` naming the file."""
    path = Path(path)

    def bad(why: str) -> CnnzooError:
        return error(f"{path}: corrupt or truncated safetensors file ({why})"[:400])

    with open_regular(path, error, "a safetensors file") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            head = f.read(8)
            if len(head) < 8:
                raise bad(f"{size} bytes, shorter than the 8-byte header length")
            n = int.from_bytes(head, "little")
            if n > min(MAX_HEADER_BYTES, size - 8):
                raise bad(f"declares a {n:,}-byte header in a {size:,}-byte file")
            raw = f.read(n)
        except OSError as e:
            raise error(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise bad("__metadata__ must map names to strings")
    tensors, ranges = {}, []
    for name, entry in header.items():
        info, begin, end = _tensor_entry(name, entry, bad)
        tensors[name] = info
        ranges.append((begin, end))
    data, declared = size - 8 - n, sum(end - begin for begin, end in ranges)
    if declared != data:
        raise bad(f"the header declares {declared:,} bytes of tensors, the file holds {data:,}")
    covered = 0
    for begin, end in sorted(ranges):
        if begin != covered:
            raise bad(f"tensor data overlaps or leaves a gap at byte {begin:,}")
        covered = end
    return SafetensorsHeader(path, tensors, dict(metadata), size)


def _tensor_entry(name: str, entry, bad) -> tuple[TensorInfo, int, int]:
    shown = name if len(name) <= 80 else name[:77] + "..."
    if not isinstance(entry, dict):
        raise bad(f"tensor {shown!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")

    def ints(v) -> bool:
        return isinstance(v, list) and all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v
        )

    if dtype not in DTYPE_BYTES:
        raise bad(f"tensor {shown!r} has unknown dtype {str(dtype)[:20]!r}")
    if not ints(shape) or len(shape) > 8:
        raise bad(f"tensor {shown!r} has an invalid shape")
    if not ints(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise bad(f"tensor {shown!r} has invalid data offsets")
    info = TensorInfo(dtype, tuple(shape))
    if offsets[1] - offsets[0] != info.nbytes:
        raise bad(
            f"tensor {shown!r}: {info.nbytes:,} bytes by its shape, {offsets[1] - offsets[0]:,} by its offsets"
        )
    return info, offsets[0], offsets[1]


def load_tensors(header: SafetensorsHeader, error: type[CnnzooError] = CheckpointError) -> dict:
    """The tensors of a file whose header :func:`read_header` checked, read through safetensors' memory map
    (the file is never read whole into a bytes object). The file must still be the size it was."""
    from safetensors.torch import load_file

    path = header.path
    st = regular_file(path, error=error, what="a safetensors file")
    if st.st_size != header.file_size:
        raise error(f"{path}: changed while it was being read ({header.file_size:,} -> {st.st_size:,} bytes)")
    try:
        return load_file(path, device="cpu")
    except Exception as e:  # SafetensorError, OSError...: all mean "not a sound safetensors file"
        raise error(
            f"{path}: corrupt or truncated safetensors file ({type(e).__name__}: {e})"[:400]
        ) from None
