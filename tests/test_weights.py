"""Pretrained weights: the catalogue against torchvision's enums, and the store against a local HTTP server
serving state dicts made here (torchvision's own classes, random init, under the real file names)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import pickle
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torchvision
from torch.hub import HASH_REGEX

import cnnzoo
from cnnzoo import weights
from cnnzoo.cli import main
from cnnzoo.errors import CheckpointError, ChecksumError, CnnzooError, UnknownModelError
from cnnzoo.models import create_model

WITH_WEIGHTS = [
    "alexnet",
    "resnet101",
    "resnet152",
    "resnet18",
    "resnet34",
    "resnet50",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
]
RESNET18 = "resnet18-f37072fd.pth"  # torchvision's file name for resnet18 IMAGENET1K_V1


# --- the catalogue is torchvision's --------------------------------------------------------------------


def _same_number(a, b) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b


def test_catalogue_is_torchvisions_for_every_zoo_model_it_publishes():
    tv = set(torchvision.models.list_models(module=torchvision.models))
    expected = sorted(n for n in cnnzoo.list_models() if n in tv)
    assert expected == WITH_WEIGHTS
    assert sorted(weights.catalogue()) == expected
    for name in expected:
        enum = torchvision.models.get_model_weights(name)
        got = weights.entries(name)
        assert [e.enum for e in got] == [f"{enum.__name__}.{w.name}" for w in enum]
        for e, w in zip(got, enum, strict=True):
            assert e.url == w.url and e.file_name == w.url.rsplit("/", 1)[-1]
            assert e.sha256_prefix == HASH_REGEX.search(e.file_name).group(1) and len(e.sha256_prefix) >= 8
            assert e.default == (w is enum.DEFAULT)
            assert e.categories == tuple(w.meta.get("categories") or ())
            assert e.ops_gflops == w.meta["_ops"] and e.file_size_mb == w.meta["_file_size"]
            assert e.num_params == w.meta["num_params"] and e.recipe == w.meta["recipe"]
            for ds, figs in w.meta["_metrics"].items():
                assert all(_same_number(e.metrics[ds][k], v) for k, v in figs.items())
            t = w.transforms()
            p = e.preprocessing
            assert (p.resize_size, p.crop_size) == (t.resize_size[0], t.crop_size[0])
            assert (list(p.mean), list(p.std)) == (list(t.mean), list(t.std))
            assert p.interpolation == t.interpolation.value
        # the weights fit the zoo model: the same names and shapes
        with torch.device("meta"):
            ours, theirs = create_model(name, num_classes=1000), torchvision.models.get_model(name)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {
            k: v.shape for k, v in theirs.state_dict().items()
        }


def test_versions_and_published_labels():
    assert weights.lookup("resnet50").spec == "imagenet:v2"  # torchvision's DEFAULT
    for spelling in ("imagenet:v1", "v1", "IMAGENET1K_V1", "ResNet50_Weights.IMAGENET1K_V1"):
        assert weights.lookup("resnet50", spelling).enum == "ResNet50_Weights.IMAGENET1K_V1"
    assert (
        weights.lookup("resnet50", "v1").published()
        == "torchvision: acc@1 76.13%, acc@5 92.862% on ImageNet-1K"
    )
    assert "no accuracy published" in weights.lookup("vgg16", "features").published()
    with pytest.raises(
        UnknownModelError, match=r"known: imagenet \(= imagenet:v2\), imagenet:v1, imagenet:v2"
    ):
        weights.lookup("resnet50", "v3")
    with pytest.raises(UnknownModelError, match="no published weights for 'resnet20'"):
        weights.lookup("resnet20")
    with pytest.raises(UnknownModelError, match="did you mean"):
        weights.lookup("resnt50")


def test_cli_list_json_is_exactly_torchvisions_urls_and_hashes(capsys):
    assert main(["weights", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["weights"]
    expected = {
        (name, f"{type(w).__name__}.{w.name}", w.url, HASH_REGEX.search(w.url.rsplit("/", 1)[-1]).group(1))
        for name in WITH_WEIGHTS
        for w in torchvision.models.get_model_weights(name)
    }
    assert {(d["model"], d["enum"], d["url"], d["sha256_prefix"]) for d in listed} == expected
    assert all(d["publisher"] == "torchvision" for d in listed)
    assert main(["weights", "list"]) == 0
    assert "torchvision: acc@1 69.758%" in capsys.readouterr().out


# --- a local server and a store in tmp -----------------------------------------------------------------


class _Server:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                truncated = self.path.startswith("/truncated/")
                body = server.files.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if truncated else body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def server():
    s = _Server()
    yield s
    s.httpd.shutdown()


@pytest.fixture(scope="module")
def resnet18_sd():
    torch.manual_seed(0)
    sd = torchvision.models.resnet18().state_dict()
    buf = io.BytesIO()
    torch.save(sd, buf)
    return sd, buf.getvalue()


@pytest.fixture
def store(tmp_path, monkeypatch, server):
    monkeypatch.setenv("CNNZOO_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no real torch.hub cache
    monkeypatch.setenv("CNNZOO_WEIGHTS_MIRROR", server.url)
    monkeypatch.delenv("CNNZOO_OFFLINE", raising=False)
    server.requests.clear()
    return tmp_path / "weights"


def _ours(data: bytes):
    """The resnet18 entry as it would be if torchvision had published ``data``: the test's catalogue seam."""
    entry = weights.lookup("resnet18")
    return weights.override(dataclasses.replace(entry, sha256_prefix=hashlib.sha256(data).hexdigest()[:8]))


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _assert_equal_state(stored: dict, original: dict):
    assert stored.keys() == original.keys()
    assert all(torch.equal(stored[k], original[k]) for k in original)


# --- fetch ---------------------------------------------------------------------------------------------


def test_fetch_checks_hash_stores_safetensors_and_matches_torchvision(store, server, resnet18_sd):
    sd, data = resnet18_sd
    server.files[RESNET18] = data
    with _ours(data):
        where, card = weights.fetch("resnet18")
        assert server.requests == [f"/{RESNET18}"]
        assert where == store / "resnet18" / "imagenet-v1.safetensors" and where.is_file()
        assert _files(store) == [where.with_suffix(".json"), where]  # no temp file left
        saved = json.loads(where.with_suffix(".json").read_text())
        assert saved["sha256"] == hashlib.sha256(data).hexdigest() and saved["verified"] is True
        assert saved["url"] == "https://download.pytorch.org/models/" + RESNET18
        assert saved["source"] == f"{server.url}/{RESNET18}" and len(saved["categories"]) == 1000
        assert saved["preprocessing"]["crop_size"] == 224 and saved["publisher"] == "torchvision"
        assert weights.fetch("resnet18:v1")[0] == where and len(server.requests) == 1  # stored: no download

        tensors, card = weights.resolve("resnet18", "imagenet", offline=True)
        _assert_equal_state(tensors, sd)
        model = create_model("resnet18", num_classes=1000).eval()
        model.load_state_dict(tensors)
        tv = torchvision.models.resnet18().eval()
        tv.load_state_dict(sd)
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.equal(model(x), tv(x))
        mc = card.model_card(cnnzoo.card.card_of(model))
        assert mc.classes[0] == "tench" and mc.input_size == (3, 224, 224) and mc.dataset == "imagenet"


def test_fetch_with_the_wrong_hash_leaves_nothing(store, server, resnet18_sd):
    server.files[RESNET18] = resnet18_sd[1]  # not the publisher's file: its hash is not f37072fd
    with pytest.raises(ChecksumError, match="does not start with f37072fd"):
        weights.fetch("resnet18")
    assert _files(store) == []


def test_truncated_download_leaves_nothing(store, server, monkeypatch, resnet18_sd):
    server.files[RESNET18] = resnet18_sd[1]
    monkeypatch.setenv("CNNZOO_WEIGHTS_MIRROR", server.url + "/truncated")
    with _ours(resnet18_sd[1]), pytest.raises(CnnzooError, match="truncated|cannot download"):
        weights.fetch("resnet18")
    assert _files(store) == []


def test_interrupted_download_leaves_nothing(store, server, resnet18_sd):
    server.files[RESNET18] = resnet18_sd[1]

    def interrupt(done, total):
        raise KeyboardInterrupt

    with _ours(resnet18_sd[1]), pytest.raises(KeyboardInterrupt):
        weights.fetch("resnet18", progress=interrupt)
    assert _files(store) == []


def test_offline_never_touches_the_network(store, server, monkeypatch, resnet18_sd, tmp_path):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setenv("CNNZOO_OFFLINE", "1")
    with pytest.raises(CnnzooError) as err:
        weights.fetch("resnet50")
    assert f"`cnnzoo weights import resnet50:v2 {'resnet50-11ad3fa6.pth'}`" in str(err.value)
    with pytest.raises(CnnzooError, match="cnnzoo weights import resnet18:v1 resnet18-f37072fd.pth"):
        weights.resolve("resnet18", "imagenet")
    assert server.requests == [] and _files(store) == []
    # torchvision's own cache is no network: a file it downloaded before is used, hash-checked
    hub = tmp_path / "torch" / "hub" / "checkpoints" / RESNET18
    hub.parent.mkdir(parents=True)
    hub.write_bytes(resnet18_sd[1])
    with _ours(resnet18_sd[1]):
        where, card = weights.fetch("resnet18")
    assert card.verified and card.source == str(hub) and where.is_file() and server.requests == []


# --- import --------------------------------------------------------------------------------------------


def test_import_pth_under_the_publishers_name_is_verified(store, resnet18_sd, tmp_path):
    sd, data = resnet18_sd
    src = tmp_path / RESNET18
    src.write_bytes(data)
    with _ours(data):
        where, card = weights.import_file("resnet18", src)
    assert card.verified and card.version == "imagenet:v1" and card.sha256 == hashlib.sha256(data).hexdigest()
    from safetensors.torch import load_file

    _assert_equal_state(load_file(where), sd)
    assert weights.path("resnet18:v1") == where
    assert [c.model for c in weights.list_stored()] == ["resnet18"]


def test_import_other_files_unverified(store, resnet18_sd, tmp_path):
    from safetensors.torch import load_file, save_file

    sd, data = resnet18_sd
    (tmp_path / "mine.pth").write_bytes(data)
    where, card = weights.import_file("resnet18", tmp_path / "mine.pth")
    assert not card.verified and card.source == str((tmp_path / "mine.pth").resolve())
    _assert_equal_state(load_file(where), sd)
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "mine.safetensors")
    where, card = weights.import_file("resnet18:v1", tmp_path / "mine.safetensors")
    _assert_equal_state(load_file(where), sd)
    tensors, card = weights.resolve("resnet18", str(tmp_path / "mine.safetensors"))  # a path: not stored
    _assert_equal_state(tensors, sd)
    assert weights.remove("resnet18") == [where, where.with_suffix(".json")] and _files(store) == []


def test_old_files_without_num_batches_tracked_fit(store, resnet18_sd, tmp_path):
    sd = {k: v for k, v in resnet18_sd[0].items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "old.pth")
    tensors, _ = weights.resolve("resnet18", str(tmp_path / "old.pth"))
    assert int(tensors["bn1.num_batches_tracked"]) == 0


def test_truncated_file_under_the_publishers_name(store, resnet18_sd, tmp_path):
    (tmp_path / RESNET18).write_bytes(resnet18_sd[1][:1000])
    with pytest.raises(ChecksumError, match="does not start with f37072fd"):
        weights.import_file("resnet18", tmp_path / RESNET18)
    (tmp_path / "cut.pth").write_bytes(resnet18_sd[1][: len(resnet18_sd[1]) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        weights.import_file("resnet18", tmp_path / "cut.pth")
    assert _files(store) == []


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(store, tmp_path, how):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    payload = {"conv1.weight": _Evil(marker)}
    if how == "torch.save":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CheckpointError, match="refused: the pickle asks for more than tensors"):
        weights.import_file("resnet18", evil)
    assert main(["weights", "import", "resnet18", str(evil)]) == 2
    assert not marker.exists() and _files(store) == []


def test_another_architectures_state_dict_names_the_tensors(store, resnet18_sd, tmp_path):
    torch.save(resnet18_sd[0], tmp_path / "r18.pth")
    with pytest.raises(CheckpointError, match=r"not weights for alexnet: .*missing: features\.0\.weight"):
        weights.import_file("alexnet", tmp_path / "r18.pth")
    sd = dict(resnet18_sd[0]) | {"fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}
    torch.save(sd, tmp_path / "r18_10.pth")
    with pytest.raises(
        CheckpointError, match=r"2 of another shape: fc\.weight \[10, 512\] \(expects \[1000, 512\]\)"
    ):
        weights.import_file("resnet18", tmp_path / "r18_10.pth")
    assert _files(store) == []


def test_read_only_or_impossible_store(store, monkeypatch, resnet18_sd, tmp_path):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("CNNZOO_WEIGHTS", str(tmp_path / "a_file" / "weights"))
    torch.save(resnet18_sd[0], tmp_path / "r18.pth")
    with pytest.raises(CnnzooError, match="cannot write to the weights store"):
        weights.import_file("resnet18", tmp_path / "r18.pth")
    if os.geteuid() != 0:  # root writes to read-only folders anyway
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        monkeypatch.setenv("CNNZOO_WEIGHTS", str(ro))
        with pytest.raises(CnnzooError, match="cannot write to the weights store"):
            weights.fetch("resnet18")
        assert _files(ro) == []


# --- the CLI: one line, exit 2 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["weights", "fetch", "resnet50:v3"], "unknown version 'v3'"),
        (["weights", "fetch", "resnet20"], "no published weights"),
        (["weights", "fetch", "resnet18"], "does not start with f37072fd"),
        (["weights", "fetch", "--offline", "vgg16"], "cnnzoo weights import vgg16:v1 vgg16-397923af.pth"),
        (["weights", "path", "resnet18"], "not in the weights store"),
        (["weights", "import", "resnet18", "missing.pth"], "no such file"),
    ],
)
def test_cli_errors_are_one_line_exit_2(store, server, resnet18_sd, capsys, argv, message):
    server.files[RESNET18] = resnet18_sd[1]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnzoo weights: error: ") and message in err and err.count("\n") == 1
    assert _files(store) == []


def test_cli_import_path_remove(store, resnet18_sd, tmp_path, capsys):
    (tmp_path / RESNET18).write_bytes(resnet18_sd[1])
    with _ours(resnet18_sd[1]):
        assert main(["weights", "import", "resnet18", str(tmp_path / RESNET18)]) == 0
        assert "hash checked" in capsys.readouterr().out
        assert main(["weights", "path", "resnet18:imagenet:v1"]) == 0
        assert capsys.readouterr().out.strip() == str(store / "resnet18" / "imagenet-v1.safetensors")
        assert main(["weights", "list", "--format", "json"]) == 0
        listed = json.loads(capsys.readouterr().out)["weights"]
        assert [(d["model"], d["verified"]) for d in listed if d["stored"]] == [("resnet18", True)]
        assert main(["weights", "remove", "resnet18", "--all"]) == 0
    assert "removed 2 file(s)" in capsys.readouterr().out and _files(store) == []
