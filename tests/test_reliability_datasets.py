"""Hostile dataset files through the real ``cnnzoo data info`` and ``data fetch``: garbage, zero-byte,
truncated-gzip, huge-header, count-mismatch, out-of-range-label and wrong-checksum IDX files, and directories
where the files should be, give exit 2 and one line naming the file and cache nothing; mutated IDX files
(hypothesis) always give one line; a mirror that sends the wrong bytes or closes the connection halfway
leaves no file, not even a partial one."""

from __future__ import annotations

import http.server
import os
import random
import struct
import threading

import pytest
from cli_harness import FUZZ, _count, assert_clear_error, cli
from hypothesis import given
from hypothesis import strategies as st


def _idx(shape: tuple[int, ...], fill: int = 0) -> bytes:
    header = bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    count = 1
    for d in shape:
        count *= d
    return header + bytes([fill]) * count


def _gz(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, mtime=0)


def _idx_set(images: bytes, labels: bytes) -> dict[str, bytes]:
    return {
        "train-images-idx3-ubyte.gz": images,
        "train-labels-idx1-ubyte.gz": labels,
        "t10k-images-idx3-ubyte.gz": images,
        "t10k-labels-idx1-ubyte.gz": labels,
    }


BAD_IDX_DIRS = {  # name -> the four MNIST-style files in --data-dir; each must be exit 2 naming a file
    "garbage": lambda: {k: random.Random(k).randbytes(500) for k in _idx_set(b"", b"")},
    "zero-byte": lambda: _idx_set(b"", b""),
    "truncated-gzip": lambda: _idx_set(_gz(_idx((5, 28, 28)))[:40], _gz(_idx((5,)))[:20]),
    "huge-header": lambda: _idx_set(
        _gz(_idx((0, 28, 28))[:4] + struct.pack(">3I", 2**31, 2**31, 2**31)), _gz(_idx((5,)))
    ),
    "count-mismatch": lambda: _idx_set(_gz(_idx((5, 28, 28))), _gz(_idx((4,)))),
    "label-out-of-range": lambda: _idx_set(_gz(_idx((5, 28, 28))), _gz(_idx((5,), fill=200))),
    "wrong-checksum": lambda: _idx_set(
        _gz(_idx((5, 28, 28))), _gz(_idx((5,)))
    ),  # sound, but not the real set
    "a-directory": lambda: None,
}


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """No shared cache and no network: cache in tmp, mirror on a closed local port (fails at once)."""
    monkeypatch.setenv("CNNZOO_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNZOO_MIRROR", "http://127.0.0.1:9/")
    return tmp_path


@pytest.mark.parametrize("action", ["info", "fetch"])
@pytest.mark.parametrize("case", sorted(BAD_IDX_DIRS))
def test_data_commands_on_corrupt_idx_files(capsys, isolated_data, case, action):
    data_dir = isolated_data / "data"
    data_dir.mkdir()
    files = BAD_IDX_DIRS[case]()
    if files is None:  # every expected file is a directory
        for name in _idx_set(b"", b""):
            (data_dir / name).mkdir()
    else:
        for name, blob in files.items():
            (data_dir / name).write_bytes(blob)
    code, _, err = cli(capsys, "data", action, "mnist", "--data-dir", data_dir)
    # directories are not taken for the files: the download is tried (and fails at once, offline)
    assert_clear_error(code, err, "data", "train-images-idx3-ubyte.gz" if files is None else data_dir)
    assert not list((isolated_data / "cache").rglob("*.safetensors")), "a corrupt set was cached"


@FUZZ
@given(data=st.data())
def test_data_info_on_fuzzed_idx_never_crashes(capsys, tmp_path_factory, data):
    _count("data info: mutated IDX files")
    d = tmp_path_factory.mktemp("idx-fuzz")
    files = _idx_set(_gz(_idx((3, 28, 28), fill=7)), _gz(_idx((3,), fill=1)))
    victim = data.draw(st.sampled_from(sorted(files)))
    blob = bytearray(
        files[victim] if data.draw(st.booleans()) else _idx((3, 28, 28) if "images" in victim else (3,))
    )
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, min(len(blob), 64) - 1) | st.integers(0, len(blob) - 1))
        blob[i] ^= data.draw(st.integers(1, 255))
    files[victim] = bytes(blob[: data.draw(st.integers(0, len(blob)))])
    for name, b in files.items():
        (d / name).write_bytes(b)
    os.environ["CNNZOO_DATA"], os.environ["CNNZOO_MIRROR"] = str(d / "cache"), "http://127.0.0.1:9/"
    try:
        code, _, err = cli(capsys, "data", "info", "mnist", "--data-dir", d, "--no-download")
    finally:
        del os.environ["CNNZOO_DATA"], os.environ["CNNZOO_MIRROR"]
    assert_clear_error(code, err, "data", d)  # never 0: even a sound file is not the published MNIST


class _Mirror(http.server.BaseHTTPRequestHandler):
    """A dataset mirror gone bad: /wrong/* serves the wrong bytes, /truncated/* closes the connection halfway."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = random.Random(self.path).randbytes(4096)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) * (2 if self.path.startswith("/truncated/") else 1)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def bad_mirror():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("fault", ["wrong", "truncated"])
def test_data_fetch_from_a_bad_mirror_leaves_no_file(capsys, isolated_data, bad_mirror, monkeypatch, fault):
    """`cnnzoo data fetch` end to end: one line (a checksum mismatch names both MD5s), and nothing is left
    in --data-dir where the good file is expected, not even a partial one."""
    monkeypatch.setenv("CNNZOO_MIRROR", f"{bad_mirror}/{fault}/")
    data_dir = isolated_data / "data"
    code, _, err = cli(capsys, "data", "fetch", "mnist", "--data-dir", data_dir)
    line = assert_clear_error(code, err, "data", "train-images-idx3-ubyte.gz")
    if fault == "wrong":
        assert "checksum" in line.lower() and "f68b3c2dcbeaaa9fbdd348bbdeb94873" in line, line  # MNIST's MD5
    assert not [p.name for p in data_dir.rglob("*") if p.is_file()], "a partial download was left"
