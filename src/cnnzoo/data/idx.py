"""A defensive reader for LeCun's IDX format (MNIST, Fashion-MNIST, KMNIST), raw or gzip-compressed.

The format (http://yann.lecun.com/exdb/mnist/): a 4-byte magic ``0x00 0x00 <dtype> <ndim>``, then
``ndim`` big-endian uint32 dimension sizes, then the data in C order, big-endian. Images are
``idx3`` (N, H, W) uint8, labels ``idx1`` (N,) uint8.

Files come from users and the network, so every field is checked before it is trusted; in particular the
size the header claims is compared with what the file can hold *before* anything is allocated, so a
flipped byte in a dimension cannot ask for terabytes. Every problem is a :class:`DataError` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["IdxFile", "read_idx"]

# dtype code -> numpy dtype (big-endian, as the format stores them)
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MAX_NDIM = 4  # MNIST-style sets use 1 (labels) or 3 (images); anything above 4 is a corrupt header
# deflate cannot expand data by more than about 1032:1, so a .gz file of n bytes holds at most ~1032·n
# bytes; a header claiming more is corrupt and is refused before allocating.
MAX_DEFLATE_RATIO = 1100
CHUNK = 1 << 20
MAX_BYTES = 1 << 62  # even with a zero dimension, the others must describe an array numpy can hold


@dataclass
class IdxFile:
    path: Path
    array: np.ndarray  # native-endian, C-contiguous, shape from the header
    md5: str  # MD5 of the decompressed bytes (header + data): what Debian's re-gzipped copies preserve


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _read_exact(f, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DataError(f"{path}: truncated IDX file ({what}: expected {n} bytes, got {len(data)})")
    return data


def _parse_header(f, path: Path) -> tuple[np.dtype, tuple[int, ...], bytes]:
    magic = _read_exact(f, 4, path, "magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise DataError(f"{path}: not an IDX file (magic number {magic.hex()} does not start with 0000)")
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX dtype code 0x{code:02x} (magic {magic.hex()})")
    if not 1 <= ndim <= MAX_NDIM:
        raise DataError(f"{path}: IDX header claims {ndim} dimensions (expected 1..{MAX_NDIM})")
    dims_bytes = _read_exact(f, 4 * ndim, path, "dimension sizes")
    shape = struct.unpack(f">{ndim}I", dims_bytes)
    return IDX_DTYPES[code], shape, magic + dims_bytes


def read_idx(path: str | os.PathLike, expect_ndim: int | None = None) -> IdxFile:
    """Read an IDX file (``.gz`` or raw, detected by content) into a native-endian numpy array."""
    path = Path(path)
    try:
        size_on_disk = path.stat().st_size
        gz = _is_gzip(path)
        opener = gzip.open if gz else open
        with opener(path, "rb") as f:
            dtype, shape, header = _parse_header(f, path)
            if expect_ndim is not None and len(shape) != expect_ndim:
                raise DataError(f"{path}: expected {expect_ndim} dimensions, the header has shape {shape}")
            nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow on absurd headers
            if math.prod(max(d, 1) for d in shape) * dtype.itemsize > MAX_BYTES:  # numpy refuses such shapes
                raise DataError(f"{path}: impossible IDX shape {shape} in the header")
            # Check the claimed size against what the file can hold, before allocating it.
            if not gz and nbytes != size_on_disk - len(header):
                raise DataError(
                    f"{path}: header shape {shape} needs {nbytes} data bytes but the file has "
                    f"{size_on_disk - len(header)}"
                )
            if gz and nbytes > MAX_DEFLATE_RATIO * size_on_disk:
                raise DataError(
                    f"{path}: header shape {shape} needs {nbytes} bytes, more than a {size_on_disk}-byte "
                    "gzip file can hold (corrupt header)"
                )
            buf = np.empty(nbytes, dtype=np.uint8)
            view = memoryview(buf)
            got = 0
            while got < nbytes:  # read in chunks: a truncated stream stops early, never over-allocates
                n = f.readinto(view[got : got + CHUNK])
                if not n:
                    break
                got += n
            if got != nbytes:
                raise DataError(
                    f"{path}: truncated IDX data (header shape {shape} needs {nbytes} bytes, got {got})"
                )
            if f.read(1):
                raise DataError(f"{path}: trailing bytes after the {nbytes} data bytes of shape {shape}")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt gzip stream ({e or type(e).__name__})") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an IDX file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    md5 = hashlib.md5(header, usedforsecurity=False)
    md5.update(buf)
    array = buf.view(dtype).reshape(shape)
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("="))
    return IdxFile(path, array, md5.hexdigest())
