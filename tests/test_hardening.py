"""Issue #17: weights files that lie, options without ranges, and a web server exposed to hostile clients.

Every case here failed before the fix: a lying or non-finite weights file loaded (predict printed ``nan``),
a sparse 10 GB file was read whole, ``/dev/zero`` filled the memory, a FIFO hung every command, an
``input_size`` the model cannot take gave exit 1, ``--batch-size 0`` gave exit 1, ``--port 99999`` a
35-line traceback, and the server answered any Host, kept stalled uploads open and echoed 20 KB names.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

import cnnzoo
from cnnzoo import checkpoint as ckpt
from cnnzoo.cli import main
from cnnzoo.errors import CheckpointError

MODEL = "lenet5_modern"  # (1, 28, 28) -> 10 classes, 61k parameters
TIMEOUT = 10  # seconds: every refusal below must come well within this


def _meta(**changes) -> ckpt.CheckpointMeta:
    record = dict(
        model=MODEL,
        model_kwargs={"num_classes": 10, "in_channels": 1},
        input_size=[1, 28, 28],
        dataset="fashion-mnist",
        classes=[f"class{i}" for i in range(10)],
        mean=[0.286],
        std=[0.353],
        epoch=1,
    )
    return ckpt.CheckpointMeta(**(record | changes))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hardening")


@pytest.fixture(scope="module")
def good_run(root) -> Path:
    torch.manual_seed(0)
    return ckpt.save_checkpoint(root / "good", cnnzoo.create_model(MODEL), _meta())


@pytest.fixture(scope="module")
def image(root) -> Path:
    img = Image.new("L", (28, 28), 0)
    img.paste(200, (8, 8, 20, 20))
    img.save(root / "ok.png")
    return root / "ok.png"


def _copy(good_run: Path, dest: Path) -> Path:
    dest.mkdir()
    for name in ("model.safetensors", "checkpoint.json"):
        (dest / name).write_bytes((good_run / name).read_bytes())
    return dest


def _header(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _write_safetensors(path: Path, header: dict, body: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + body)


def _forget_checksum(run: Path) -> None:
    record = json.loads((run / "checkpoint.json").read_text())
    record.pop("weights_sha256", None)
    (run / "checkpoint.json").write_text(json.dumps(record))


def _set_input_size(run: Path, size: list[int]) -> None:
    record = json.loads((run / "checkpoint.json").read_text())
    (run / "checkpoint.json").write_text(json.dumps(record | {"input_size": size}))


# --- the hostile weights files ----------------------------------------------------------------------------


def relabelled_i32(good_run: Path, dest: Path) -> Path:
    """Every F32 tensor relabelled I32: same shapes, same byte sizes."""
    run = _copy(good_run, dest)
    header, body = _header(run / "model.safetensors")
    for name, entry in header.items():
        if name != "__metadata__" and entry["dtype"] == "F32":
            entry["dtype"] = "I32"
    _write_safetensors(run / "model.safetensors", header, body)
    _forget_checksum(run)
    return run


def non_finite(good_run: Path, dest: Path) -> Path:
    model = cnnzoo.create_model(MODEL)
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    return ckpt.save_checkpoint(dest, model, _meta())


def lying_size(good_run: Path, dest: Path) -> Path:
    """A 10 GB tensor declared in a file of a few hundred KB."""
    run = _copy(good_run, dest)
    header, body = _header(run / "model.safetensors")
    name = next(k for k in header if k != "__metadata__")
    begin = header[name]["data_offsets"][0]
    header[name]["shape"] = [10 * 2**30 // 4]
    header[name]["data_offsets"] = [begin, begin + 10 * 2**30]
    _write_safetensors(run / "model.safetensors", header, body)
    _forget_checksum(run)
    return run


def sparse_huge(good_run: Path, dest: Path) -> Path:
    """A real (sparse) 10 GB file whose header is consistent with it, but not with the model."""
    run = _copy(good_run, dest)
    header = {
        "__metadata__": _header(good_run / "model.safetensors")[0]["__metadata__"],
        "c1.weight": {"dtype": "F32", "shape": [10 * 2**30 // 4], "data_offsets": [0, 10 * 2**30]},
    }
    raw = json.dumps(header).encode()
    with open(run / "model.safetensors", "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        f.truncate(8 + len(raw) + 10 * 2**30)
    _forget_checksum(run)
    return run


def dev_zero(good_run: Path, dest: Path) -> Path:
    run = _copy(good_run, dest)
    (run / "model.safetensors").unlink()
    (run / "model.safetensors").symlink_to("/dev/zero")
    return run


def fifo(good_run: Path, dest: Path) -> Path:
    run = _copy(good_run, dest)
    (run / "model.safetensors").unlink()
    os.mkfifo(run / "model.safetensors")
    return run


def fifo_json(good_run: Path, dest: Path) -> Path:
    run = _copy(good_run, dest)
    (run / "checkpoint.json").unlink()
    os.mkfifo(run / "checkpoint.json")
    return run


IN_PROCESS = {
    "relabelled-i32": (relabelled_i32, "I32"),
    "non-finite": (non_finite, "NaN"),
    "lying-size": (lying_size, "bytes"),
    "sparse-10GB": (sparse_huge, "do not fit"),
}
SPECIAL = {"dev-zero": dev_zero, "fifo": fifo, "fifo-json": fifo_json}


def _argv(command: str, run: Path, image: Path, root: Path) -> list[str]:
    return {
        "predict": ["predict", run, image],
        "eval": ["eval", run, "--dataset", "mnist", "--data-dir", root / "no-data"],
        "export": ["export", run, "--out", root / f"out-{run.name}.onnx"],
        "serve": ["serve", "--checkpoint", run, "--port", "0"],
    }[command]


def assert_one_line(code: int, err: str, command: str, *words: str) -> None:
    assert "Traceback" not in err, err
    assert code == 2, f"exit {code}: {err}"
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning")]
    assert len(lines) == 1 and lines[0].startswith(f"cnnzoo {command}: error:"), err
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.mark.parametrize("case", IN_PROCESS)
def test_hostile_weights_are_refused_by_load_checkpoint(root, good_run, case):
    make, word = IN_PROCESS[case]
    run = make(good_run, root / f"load-{case}")
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError) as e:
        ckpt.load_checkpoint(run)
    assert time.perf_counter() - t0 < TIMEOUT
    assert word in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("command", ["predict", "eval", "export", "serve"])
@pytest.mark.parametrize("case", IN_PROCESS)
def test_hostile_weights_are_one_line_for_every_command(
    capsys, monkeypatch, root, good_run, image, case, command
):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("served a hostile checkpoint"))
    make, word = IN_PROCESS[case]
    run = make(good_run, root / f"{command}-{case}")
    t0 = time.perf_counter()
    code = main([str(a) for a in _argv(command, run, image, root)])
    _, err = capsys.readouterr()
    assert time.perf_counter() - t0 < TIMEOUT
    assert_one_line(code, err, command, word)


@pytest.mark.parametrize(
    "command", ["predict", "eval", "export", pytest.param("serve", marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("case", SPECIAL)
def test_device_and_fifo_weights_end_at_once(root, good_run, image, case, command):
    """In a subprocess: before the fix, /dev/zero was read until the OOM killer came, and a FIFO hung."""
    run = SPECIAL[case](good_run, root / f"{command}-{case}")
    argv = [sys.executable, "-m", "cnnzoo", *map(str, _argv(command, run, image, root))]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT + 20)  # startup ~3 s
    assert_one_line(proc.returncode, proc.stderr, command, "not a regular file")
    assert "open http" not in proc.stdout


def test_sparse_file_is_refused_before_it_is_read(root, good_run):
    """The 10 GB are refused from the header: far faster than reading them, and no memory used."""
    import resource

    run = sparse_huge(good_run, root / "sparse-rss")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="do not fit"):
        ckpt.load_checkpoint(run)
    assert time.perf_counter() - t0 < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


def test_dtype_error_names_the_tensor(root, good_run):
    run = relabelled_i32(good_run, root / "i32-named")
    with pytest.raises(CheckpointError, match=r"conv1\.weight is stored as I32, the model's is F32"):
        ckpt.load_checkpoint(run)


@pytest.mark.parametrize(
    "size, word",
    [
        ([3, 28, 28], "3 channel(s), the model takes 1"),
        ([1, 8192, 8192], "cannot take"),
        ([64, 8192, 8192], "channel(s)"),
    ],
)
@pytest.mark.parametrize("command", ["predict", "export", "serve"])
def test_input_size_the_model_cannot_take(capsys, monkeypatch, root, good_run, image, size, word, command):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("served a bad checkpoint"))
    run = _copy(good_run, root / f"size-{command}-{size[0]}-{size[1]}")
    _set_input_size(run, size)
    argv = _argv(command, run, image, root)
    if command == "export":
        argv += ["--format", "torchscript"]
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    assert_one_line(code, err, command, word)


def test_activation_cap_on_a_model_that_takes_any_size():
    """ResNet's global pooling takes any size; [1, 8192, 8192] would make a 16 GiB first feature map."""
    from cnnzoo.fitcheck import MAX_ACTIVATION_BYTES, check_input_size

    with torch.device("meta"):
        model = cnnzoo.create_model("resnet18", num_classes=10, in_channels=1)
    assert check_input_size(model, (1, 224, 224), "r") == 10
    with pytest.raises(CheckpointError, match="GiB per image"):
        check_input_size(model, (1, 8192, 8192), "r")
    assert MAX_ACTIVATION_BYTES == 1 << 30


def test_bare_safetensors_is_read_through_the_guarded_reader(root, good_run):
    """The weights package's reader, and export's, refuse the same files."""
    from cnnzoo.export import load_safetensors
    from cnnzoo.weights.files import load_state_dict

    for make in (lying_size, dev_zero):
        run = make(good_run, root / f"bare-{make.__name__}")
        for read in (load_state_dict, load_safetensors):
            with pytest.raises(CheckpointError):
                read(run / "model.safetensors")


# --- options ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "x", "--batch-size", "0"],
        ["eval", "x", "--batch-size", "-1"],
        ["eval", "x", "--limit", "0"],
        ["eval", "x", "--limit", "-5"],
        ["predict", "x", "y", "--top-k", "0"],
        ["export", "x", "--out", "y", "--opset", "0"],
        ["export", "x", "--out", "y", "--atol", "nan"],
        ["export", "x", "--out", "y", "--atol", "-1"],
        ["serve", "--port", "99999"],
        ["serve", "--port", "-1"],
        ["serve", "--threads", "-4"],
    ],
)
def test_numeric_options_have_ranges(capsys, monkeypatch, argv):
    import uvicorn

    for target, name in ((uvicorn, "run"), (uvicorn.Server, "run")):  # an accepted option must not serve
        monkeypatch.setattr(target, name, lambda *a, **k: pytest.fail("the option was accepted"))
    with pytest.raises(SystemExit) as e:  # refused by the parser, before anything is read
        main(argv)
    code = e.value.code
    _, err = capsys.readouterr()
    assert_one_line(code, err, argv[0], f"argument {argv[-2]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["port in use", pytest.param("bad host", marks=pytest.mark.slow)])
def test_serve_bind_failure_is_one_line_and_no_url(case):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        host = "127.0.0.1" if case == "port in use" else "no-such-host.invalid"
        argv = [sys.executable, "-m", "cnnzoo", "serve", "--host", host, "--port", str(port)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert_one_line(proc.returncode, proc.stderr, "serve")
    assert "open http" not in proc.stdout


# --- the web app ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def session(good_run):
    from cnnzoo.web import load_session

    return load_session(good_run)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (28, 28), 0).save(buf, "PNG")
    return buf.getvalue()


def test_host_header_must_name_this_server(session):
    from cnnzoo.web import create_app
    from cnnzoo.web.guards import host_names

    app = create_app(session, allowed_hosts=host_names("127.0.0.1"))
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST"):
        assert TestClient(app, base_url=f"http://{host}").get("/api/info").status_code == 200, host
    r = TestClient(app, base_url="http://rebound.evil.example:8000").get("/api/info")
    assert r.status_code == 400 and "--allow-host" in r.json()["error"] and "source" not in r.text
    extra = create_app(session, allowed_hosts=host_names("127.0.0.1", ["lab.example"]))
    assert TestClient(extra, base_url="http://lab.example:8000").get("/api/info").status_code == 200


def test_head_answers_like_get(session):
    from cnnzoo.web import create_app

    client = TestClient(create_app(session))
    for path in ("/", "/explore", "/api/info", "/api/models", "/static/app.js"):
        get, head = client.get(path), client.head(path)
        if get.status_code == 404:
            continue  # a static file that may be named otherwise
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""


def test_long_names_are_not_echoed_whole(session):
    from cnnzoo.web import create_app

    client = TestClient(create_app(session))
    r = client.get("/api/summary/" + "A" * 20_000)
    assert r.status_code == 404 and len(r.text) < 300
    r = client.get("/api/summary/lenet5", params={"input": "9" * 20_000})
    assert r.status_code == 422 and len(r.text) < 300


def test_urlencoded_file_gets_a_clear_line(session):
    from cnnzoo.web import create_app

    client = TestClient(create_app(session))
    for endpoint in ("/api/predict", "/api/feature-maps"):
        r = client.post(endpoint, data={"file": "not an upload"})
        assert r.status_code == 422
        assert r.json() == {"error": "send the image as multipart/form-data field 'file'"}


def test_non_finite_outputs_carry_a_warning(good_run):
    from cnnzoo.web import create_app
    from cnnzoo.web.session import Session

    model, meta = ckpt.load_checkpoint(good_run)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    client = TestClient(create_app(Session(model, meta, "nan")))
    r = client.post("/api/predict", files={"file": ("x.png", _png(), "image/png")})
    assert r.status_code == 200
    body = r.json()
    assert "not finite" in body["warning"]
    assert all(row["probability"] is not None for row in body["top"])


@pytest.fixture()
def live_server(session):
    """The app under uvicorn (as `cnnzoo serve` runs it) with a 1.5 s body deadline."""
    import uvicorn

    from cnnzoo.commands.serve import KEEP_ALIVE_SECONDS, bind
    from cnnzoo.web import create_app
    from cnnzoo.web.guards import header_deadline_protocol

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = create_app(session, allowed_hosts=["127.0.0.1"], body_seconds=1.5)
    config = uvicorn.Config(
        app, log_level="warning", timeout_keep_alive=KEEP_ALIVE_SECONDS, http=header_deadline_protocol(1.5)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def _get(port: int, path: str = "/api/info") -> tuple[int, float]:
    import http.client

    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status, time.perf_counter() - t0


def test_stalled_upload_is_closed_and_others_are_served(live_server):
    stalled = []
    for _ in range(20):  # a small slowloris: headers sent, the body never comes
        s = socket.create_connection(("127.0.0.1", live_server))
        s.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 100000\r\n\r\n--x\r\n"
        )
        s.settimeout(6)
        stalled.append(s)
    status, seconds = _get(live_server)
    assert status == 200 and seconds < 1
    t0 = time.perf_counter()
    for s in stalled:
        answer = b""
        while chunk := s.recv(4096):  # until the server closes the connection
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        s.close()
    assert time.perf_counter() - t0 < 5
    assert _get(live_server)[0] == 200


def test_slow_headers_are_closed_and_others_are_served(live_server):
    """Slowloris proper: the request line and headers trickle in a byte at a time and never end."""
    slow = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", live_server))
        s.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        s.settimeout(8)
        slow.append(s)
    t0 = time.perf_counter()
    for _ in range(4):  # keep trickling: each byte would reset a timer that only counts idleness
        time.sleep(0.5)
        for s in slow:
            try:
                s.sendall(b"a")
            except OSError:
                pass
        status, seconds = _get(live_server)
        assert status == 200 and seconds < 1
    for s in slow:
        while s.recv(4096):  # until the server closes it (recv raises on the 8 s timeout if it never does)
            pass
        s.close()
    assert time.perf_counter() - t0 < 6
    assert _get(live_server)[0] == 200
