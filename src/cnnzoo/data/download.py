"""Atomic, checksummed downloads.

torchvision's ``download_url`` writes straight to the final path and has no timeout, so a stalled server
hangs it and an interrupted download leaves a partial file where a good one is expected. Here the bytes go
to a temporary file in the target directory, the MD5 (torchvision's ``calculate_md5``) is checked, and only
then is the file renamed into place (``os.replace`` is atomic on one filesystem). Any failure removes the
temporary file.
"""

from __future__ import annotations

import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import ChecksumError, DataError

__all__ = ["download_file", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 30.0  # seconds without a byte before giving up (per socket operation)
CHUNK = 1 << 16
USER_AGENT = "cnnzoo (pytorch/vision compatible)"


def _fetch(url: str, fh, timeout: float, deadline: float | None) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        expected = resp.length  # Content-Length, if the server sent one
        got = 0
        while chunk := resp.read(CHUNK):
            fh.write(chunk)
            got += len(chunk)
            # a server dripping one byte per `timeout` would never trip the socket timeout
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"download took longer than the {deadline:.0f}s limit")
        if expected is not None and got < expected:
            raise DataError(f"{url}: truncated download ({got} of {expected} bytes)")


def download_file(
    urls: list[str],
    dest: str | os.PathLike,
    md5: str,
    timeout: float = DEFAULT_TIMEOUT,
    total_timeout: float | None = None,
) -> Path:
    """Download the first URL that works to ``dest`` (a file path), verifying ``md5``; return ``dest``.

    Raises :class:`ChecksumError` when every mirror served wrong bytes, :class:`DataError` when none could
    be reached. ``dest`` is either absent or complete and verified afterwards, never partial.
    """
    from torchvision.datasets.utils import calculate_md5

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    checksum_error: ChecksumError | None = None
    for url in urls:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            deadline = time.monotonic() + total_timeout if total_timeout else None
            with os.fdopen(fd, "wb") as fh:
                _fetch(url, fh, timeout, deadline)
            actual = calculate_md5(tmp)
            if actual != md5:
                checksum_error = ChecksumError(
                    f"{dest.name} from {url}: checksum mismatch (expected MD5 {md5}, got {actual})"
                )
                errors.append(str(checksum_error))
                continue
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; a dataset file is not a secret
            os.replace(tmp, dest)
            return dest
        except DataError as e:
            errors.append(str(e))
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            OSError,
            ValueError,
        ) as e:  # timeouts: OSError
            reason = getattr(e, "reason", None) or e
            errors.append(f"{url}: {type(e).__name__}: {reason}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    if checksum_error is not None and len(errors) == 1:
        raise checksum_error
    raise (checksum_error.__class__ if checksum_error else DataError)(
        f"could not download {dest.name}: " + "; ".join(errors)
    )
