"""Export: every registered model to ONNX (checked against PyTorch with onnxruntime), safetensors round trips,
TorchScript, refusal of pickles, and the ``cnnzoo export`` command."""

from __future__ import annotations

import inspect
import pickle

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import pytest
import torch

from cnnzoo.cli import main
from cnnzoo.errors import CheckpointError, ConversionError
from cnnzoo.export import export_onnx, export_safetensors, export_torchscript, load_safetensors
from cnnzoo.inference import load_model_or_checkpoint
from cnnzoo.layers import LENET5_C3_TABLE
from cnnzoo.models import create_model, get_model_info, list_models

# Models whose export takes more than ~1.5 s of CPU at their smallest input (deep or wide nets).
HEAVY = ("alexnet*", "vgg*", "resnet*", "plain*")


def small_model(name: str) -> tuple[torch.nn.Module, tuple[int, int, int]]:
    """The model with 3 classes at the smallest input (from a short list) it accepts, to keep CI fast.
    Builders that size their head from the input get ``input_size``; others (global pooling) just take it."""
    info = get_model_info(name)
    c, h, w = info.input_size
    params = inspect.signature(info.builder).parameters.values()
    takes_size = any(p.name == "input_size" or p.kind is p.VAR_KEYWORD for p in params)
    model = None
    for s in (32, 48, 64, 96, 128, 160, 224, 227):
        if s > max(h, w):
            break
        try:
            if takes_size or model is None:
                torch.manual_seed(0)
                model = create_model(
                    name, num_classes=3, **({"input_size": (s, s)} if takes_size else {})
                ).eval()
            with torch.inference_mode():
                model(torch.zeros(1, c, s, s))
            return model, (c, s, s)
        except Exception:  # too small for this network (ShapeError at build or forward): the next size
            continue
    return create_model(name, num_classes=3).eval(), (c, h, w)


def _logit_scale(model, size) -> float:
    with torch.no_grad():
        return model(torch.randn(3, *size, generator=torch.Generator().manual_seed(0))).abs().max().item()


def _marks(name: str):
    import fnmatch

    return [pytest.mark.slow] if any(fnmatch.fnmatch(name, p) for p in HEAVY) else []


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in list_models()])
def test_every_model_exports_to_onnx_and_matches_pytorch(name, tmp_path):
    model, size = small_model(name)
    path = tmp_path / f"{name}.onnx"
    # Heavy models skip the exporter's optional graph optimiser (half the export time; onnxruntime folds
    # the same constants itself). The light ones, LeNet-5's custom layers among them, go through it.
    heavy = bool(_marks(name))
    result = export_onnx(model, path, input_size=size, optimize=not heavy)
    assert result.max_abs_diff <= 1e-4 * max(1.0, _logit_scale(model, size))

    # Check independently of export_onnx's own check: fresh session, other inputs, batch 1 and 3.
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert isinstance(inp.shape[0], str), "batch dimension should be symbolic"
    assert list(inp.shape[1:]) == list(size)
    g = torch.Generator().manual_seed(123)
    for batch in (1, 3):
        x = torch.rand(batch, *size, generator=g) * 4 - 2
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {inp.name: x.numpy()})[0]
        assert got.shape == expected.shape == (batch, 3)
        # 1e-4, relative once logits exceed ±1 (random-init deep ResNets reach ~10²; see verify_onnx)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * max(1.0, np.abs(expected).max()))


def test_lenet5_custom_layers_export_as_standard_onnx_ops(tmp_path):
    """C3's placement matmul, the subsampling and the RBF layer become plain ONNX ops (no custom domain)."""
    model = create_model("lenet5")
    export_onnx(model, tmp_path / "lenet5.onnx")
    proto = onnx.load(str(tmp_path / "lenet5.onnx"))
    onnx.checker.check_model(proto)
    ops = {(n.domain or "ai.onnx", n.op_type) for n in proto.graph.node}
    assert {d for d, _ in ops} <= {"ai.onnx"}, ops
    assert ("ai.onnx", "Conv") in ops and ("ai.onnx", "Tanh") in ops
    # The exporter folds C3's placement matmul into one dense (16, 6, 5, 5) kernel: zero exactly where the
    # paper's Table I has no connection, the stored weights elsewhere.
    (c3,) = [onnx.numpy_helper.to_array(t) for t in proto.graph.initializer if list(t.dims) == [16, 6, 5, 5]]
    for o, row in enumerate(LENET5_C3_TABLE):
        for i in range(6):
            assert (c3[o, i] != 0).any() == (i in row), (o, i)
    assert np.count_nonzero(c3) == 1500  # 60 connected 5×5 kernels
    np.testing.assert_array_equal(np.sort(c3[c3 != 0]), np.sort(model.c3.weight.detach().numpy().ravel()))


def test_static_batch_export(tmp_path):
    model = create_model("lenet5_ng")
    export_onnx(model, tmp_path / "m.onnx", dynamic_batch=False)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 1, 32, 32]


def test_tolerance_violation_is_a_conversion_error(tmp_path):
    with pytest.raises(ConversionError, match="lenet5: onnxruntime differs from PyTorch"):
        export_onnx(create_model("lenet5"), tmp_path / "m.onnx", atol=-1.0)


def test_missing_input_size_is_a_clear_error(tmp_path):
    with pytest.raises(ConversionError, match="input_size"):
        export_onnx(torch.nn.Linear(3, 2), tmp_path / "m.onnx")


@pytest.mark.parametrize("name", ["lenet5", "lenet5_modern"])
def test_safetensors_round_trip_is_bitwise_exact(name, tmp_path):
    torch.manual_seed(1)
    model = create_model(name)
    export_safetensors(model, tmp_path / "w.safetensors", metadata={"model": name, "classes": list("abc")})
    tensors, meta = load_safetensors(tmp_path / "w.safetensors")
    assert meta == {"model": name, "classes": ["a", "b", "c"]}

    torch.manual_seed(2)  # different random weights, then overwritten by the file
    fresh = create_model(name)
    fresh.load_state_dict(tensors, strict=True)
    original = model.state_dict()
    assert original.keys() == fresh.state_dict().keys()
    for key, value in fresh.state_dict().items():
        assert value.dtype == original[key].dtype and value.shape == original[key].shape
        assert value.numpy().tobytes() == original[key].numpy().tobytes(), key


@pytest.mark.filterwarnings("ignore:`torch.jit")  # TorchScript's own deprecation notice
def test_torchscript_export_matches(tmp_path):
    model = create_model("lenet5")
    result = export_torchscript(model, tmp_path / "m.pt")
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=1e-5)
    assert result.max_abs_diff <= 1e-5


class _Evil:
    """Unpickling this creates a marker file: the proof that a loader ran a pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("filename", ["evil.pt", "evil.safetensors", "evil.bin"])
@pytest.mark.parametrize("kind", ["torch.save", "pickle"])
def test_pickles_are_refused_and_never_run(tmp_path, filename, kind, capsys):
    marker = tmp_path / "pwned"
    path = tmp_path / filename
    payload = {"weight": torch.zeros(2), "evil": _Evil(marker)}
    if kind == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=4))

    with pytest.raises(CheckpointError, match="pickle-based weights .* refused"):
        load_safetensors(path)
    with pytest.raises(CheckpointError, match="pickle"):
        load_model_or_checkpoint(path)
    assert main(["export", str(path), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err
    assert not marker.exists()


def test_cli_export_onnx_from_a_model_name(tmp_path, capsys):
    out = tmp_path / "lenet5.onnx"
    assert main(["export", "lenet5", "--format", "onnx", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "random" in captured.err  # random weights are announced
    assert "max abs diff" in captured.out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.run(None, {"images": np.zeros((5, 1, 32, 32), np.float32)})[0].shape == (5, 10)


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_cli_export_safetensors_and_torchscript(tmp_path):
    assert (
        main(["export", "lenet5", "--format", "safetensors", "--out", str(tmp_path / "w.safetensors")]) == 0
    )
    tensors, meta = load_safetensors(tmp_path / "w.safetensors")
    assert meta["model"] == "lenet5" and meta["input_size"] == [1, 32, 32]
    assert tensors["c3.weight"].shape == (60, 5, 5)  # Table I: 6·3 + 6·4 + 3·4 + 6 = 60 connected kernels
    assert main(["export", "lenet5", "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    assert torch.jit.load(str(tmp_path / "m.pt"))(torch.zeros(2, 1, 32, 32)).shape == (2, 10)


def test_cli_export_unknown_model_suggests_names(tmp_path, capsys):
    assert main(["export", "lenet", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_export_from_a_run_directory(tmp_path):
    """A `cnnzoo train` run directory exports to ONNX and to a standalone .safetensors that is itself a
    loadable checkpoint (metadata in the header), both giving the trained model's outputs."""
    from cnnzoo.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint

    torch.manual_seed(3)
    model = create_model("lenet5_modern", num_classes=4).eval()
    meta = CheckpointMeta(
        model="lenet5_modern",
        model_kwargs={"num_classes": 4},
        input_size=[1, 28, 28],
        dataset="fashion-mnist",
        classes=["a", "b", "c", "d"],
        mean=[0.5],
        std=[0.25],
    )
    run = save_checkpoint(tmp_path / "run", model, meta)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)

    assert main(["export", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"images": x.numpy()})[0], expected.numpy(), atol=1e-5)

    alone = tmp_path / "elsewhere" / "weights.safetensors"  # no checkpoint.json beside it
    assert main(["export", str(run), "--format", "safetensors", "--out", str(alone)]) == 0
    reloaded, reloaded_meta = load_checkpoint(alone)
    assert reloaded_meta.classes == ("a", "b", "c", "d") and reloaded_meta.mean == (0.5,)
    with torch.no_grad():
        assert torch.equal(reloaded(x), expected)
