"""Reading weights files safely: the download, the hash, the unpickling that runs no code, the fit check.

A publisher's ``.pth`` is a pickle. It is opened only with ``torch.load(weights_only=True)``, whose
unpickler builds tensors and plain containers and refuses anything else, so a pickle whose ``__reduce__``
calls ``os.system`` is an error, not a command. What comes out is then compared, name by name and shape by
shape, with the zoo model built on the meta device (no memory, no init).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ..errors import CheckpointError, CnnzooError
from ..files import load_tensors, open_regular, read_header, regular_file
from ..files import sha256_file as _sha256_file
from ..models import create_model

__all__ = [
    "DEFAULT_TIMEOUT",
    "Progress",
    "download",
    "sha256_file",
    "load_state_dict",
    "check_fits",
    "max_file_bytes",
    "state_bytes",
]

DEFAULT_TIMEOUT = 30.0  # seconds without a byte before a download gives up
CHUNK = 1 << 20
USER_AGENT = "cnnzoo (torch.hub compatible)"
SHOWN = 3  # tensors named in a mismatch message

Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


def stderr_progress(label: str) -> Progress:
    """A progress line on a terminal's stderr (redrawn at most 5 times a second); silent when redirected."""
    if not sys.stderr.isatty():
        return lambda done, total: None
    last = [0.0]

    def show(done: int, total: int | None) -> None:
        now = time.monotonic()
        final = total is not None and done >= total
        if now - last[0] < 0.2 and not final:
            return
        last[0] = now
        of = f" of {total / 1e6:.1f} MB ({100 * done / total:.0f}%)" if total else " MB"
        print(f"\r{label}: {done / 1e6:.1f}{of}", end="\n" if final else "", file=sys.stderr, flush=True)

    return show


@contextmanager
def download(
    url: str, directory: Path, timeout: float = DEFAULT_TIMEOUT, progress: Progress | None = None
) -> Iterator[tuple[Path, str]]:
    """Stream ``url`` into a temporary file in ``directory``, hashing as it goes; yield (file, sha256 hex).

    The file is removed when the block ends, however it ends (error, Ctrl-C, success: callers keep what
    they converted, never the download itself)."""
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=directory)
    tmp = Path(name)
    try:
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as fh:
                request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
                with urllib.request.urlopen(request, timeout=timeout) as resp:
                    total, done = resp.length, 0
                    while chunk := resp.read(CHUNK):
                        fh.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
                    if total is not None and done < total:
                        raise CheckpointError(f"{url}: truncated download ({done} of {total} bytes)")
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:  # timeouts are OSErrors
            reason = getattr(e, "reason", None) or e.strerror or e
            raise CnnzooError(f"cannot download {url}: {reason}") from None
        yield tmp, digest.hexdigest()
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    return _sha256_file(path, CheckpointError)


def _kind(path: Path) -> str:
    """'zip' (torch.save's format), 'pickle' (the legacy one) or 'safetensors' (anything else: its guarded
    reader refuses what is not one, e.g. a header length of 2**63), from the first bytes."""
    with open_regular(path, CheckpointError, "a weights file") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    return "pickle" if head[:1] == b"\x80" else "safetensors"


def _check_inflated(path: Path, max_bytes: int) -> None:
    """Refuse a zip whose entries inflate to more than ``max_bytes``, from its central directory alone:
    a 2 MB file of deflated zeros must not ask for gigabytes before anything is read."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated weights file ({e})"[:300]) from None
    inflated = sum(i.file_size for i in infos)
    if inflated > max_bytes:
        raise CheckpointError(
            f"{path}: its zip entries inflate to {inflated:,} bytes, more than the {max_bytes:,} "
            "these weights can need; refused before reading (a zip bomb?)"
        )


def state_bytes(model: str) -> int:
    """The bytes of ``create_model(model, num_classes=1000)``'s state dict (built on the meta device)."""
    with torch.device("meta"):
        skeleton = create_model(model, num_classes=1000)
    return sum(t.numel() * t.element_size() for t in skeleton.state_dict().values())


def max_file_bytes(model: str) -> int:
    """What a weights file for ``model`` may inflate to: its state dict in float64 (twice float32's, for
    files saved in double precision) plus 16 MiB for the pickle and the zip's records."""
    return 2 * state_bytes(model) + (16 << 20)


def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    # Training scripts often save {"state_dict": ...} or {"model": ...}; torchvision saves the state dict.
    if isinstance(obj, dict) and len(obj) <= 4:
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict (name -> tensor)")
    bad = [k for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise CheckpointError(
            f"{path}: not a state dict: {len(bad)} entries are not name -> tensor, e.g. {bad[0]!r}"
        )
    return dict(obj)


def load_state_dict(path: Path, max_bytes: int | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file or of a ``torch.save`` state dict (read with
    ``weights_only=True``: a pickle that would build anything but tensors and containers is refused).
    ``max_bytes`` (see :func:`max_file_bytes`) bounds what a zip may inflate to, checked before reading."""
    path = Path(path)
    regular_file(path, error=CheckpointError, what="a weights file")
    kind = _kind(path)
    if kind == "safetensors":
        # the guarded reader: the header checked against the file's size, then a memory-mapped read
        return load_tensors(read_header(path))
    if kind == "zip" and max_bytes is not None:
        _check_inflated(path, max_bytes)
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()
        detail = next((line.strip() for line in first if "GLOBAL" in line or "Unsupported" in line), "")
        raise CheckpointError(
            f"{path}: refused: the pickle asks for more than tensors, so it could run code "
            f"(torch.load weights_only=True){': ' + detail[:160] if detail else ''}"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: corrupt or truncated weights file ({detail})") from None
    return _unwrap(obj, path)


def _named(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN])
    return f"{shown}, …" if len(keys) > SHOWN else shown


def check_fits(
    model: str, tensors: dict[str, torch.Tensor], source: str, num_classes: int | None = None
) -> dict[str, torch.Tensor]:
    """``tensors`` if they fit ``create_model(model, num_classes=num_classes or 1000)`` name for name and
    shape for shape, else :class:`CheckpointError` naming the first few that do not (a classifier of
    another size: the ``num_classes`` to give). BatchNorm's ``num_batches_tracked`` counters, absent from
    older publisher files, are added as 0 (what ``load_state_dict`` does)."""
    with torch.device("meta"):
        skeleton = create_model(model, num_classes=num_classes or 1000)
    expected = skeleton.state_dict()
    tensors = dict(tensors)
    for k, v in expected.items():
        if k.endswith(".num_batches_tracked") and k not in tensors:
            tensors[k] = torch.zeros((), dtype=v.dtype)
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    wrong = [k for k in expected if k in tensors and tuple(tensors[k].shape) != tuple(expected[k].shape)]
    hint = ""
    if wrong and not missing and not unexpected:
        heads = {int(tensors[k].shape[0]) for k in wrong}
        if len(heads) == 1 and all(tensors[k].shape[1:] == expected[k].shape[1:] for k in wrong):
            n = heads.pop()  # only the classifier differs: a fine-tuned model's
            hint = f"; a {n}-class classifier: load it with num_classes={n} (--num-classes {n})"
    if missing or unexpected or wrong:
        problems = []
        if wrong:
            shapes = [f"{k} {list(tensors[k].shape)} (expects {list(expected[k].shape)})" for k in wrong]
            problems.append(f"{len(wrong)} of another shape: {_named(shapes)}")
        if missing:
            problems.append(f"{len(missing)} missing: {_named(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected: {_named(unexpected)}")
        raise CheckpointError(f"{source}: not weights for {model}: {'; '.join(problems)}{hint}")
    return tensors
