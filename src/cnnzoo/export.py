"""Export a model to ONNX, safetensors or TorchScript; every ONNX export is checked with onnxruntime.

Exporter choice (torch 2.14): ``torch.onnx.export(..., dynamo=True)``, the torch.export-based exporter.
The older TorchScript-based one (``dynamo=False``) is deprecated, and it cannot export
``AdaptiveAvgPool2d`` when the output size does not divide the input size — exactly what AlexNet/VGG heads
do at any input other than 224 — so it fails on half the zoo. The dynamo exporter handles every model here,
including LeNet-5's custom layers (the C3 placement matmul, subsampling, RBF), with a symbolic batch
dimension. It is slower (about 1.5–4 s per model instead of 0.05–0.5 s), which does not matter for an export.
The example input has batch 2, not 1: torch.export specialises sizes 0 and 1.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .atomic import atomic_write, check_replaceable, shown_path
from .card import card_of
from .errors import CheckpointError, ConversionError
from .tta import for_prediction

__all__ = [
    "ExportResult",
    "check_output",
    "export_onnx",
    "export_safetensors",
    "export_torchscript",
    "load_safetensors",
    "onnx_bytes",
    "verify_onnx",
    "DEFAULT_OPSET",
    "ONNX_ATOL",
]

DEFAULT_OPSET = 18  # the dynamo exporter's native opset; onnxruntime ≥ 1.14 runs it
ONNX_ATOL = 1e-4  # max |onnxruntime − PyTorch| on the logits, float32, × max(1, max |logit|)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str  # "onnx" | "safetensors" | "torchscript"
    max_abs_diff: float | None  # vs PyTorch on random inputs (None where not checked)
    bytes: int


def check_output(out: str | os.PathLike, *sources: str | os.PathLike | None) -> Path:
    """``out`` as a Path if an export may write it: a name, absent or a regular file (never a device, FIFO,
    directory or symlink), and none of the files the export reads. A run directory among ``sources``
    protects every file already in it (an export into it may add a file, never replace one); a
    ``.safetensors`` source protects itself and its ``checkpoint.json``."""
    if os.fsdecode(out).strip() == "":
        raise ConversionError("--out is empty: name the file to write")
    check_replaceable(out, ConversionError)
    path = Path(out)
    if not path.exists():
        return path
    target, mine = path.resolve(), os.stat(path)
    for source in filter(None, sources):
        src = Path(source)
        if not src.exists():
            continue
        read = (
            [p for p in src.iterdir() if p.is_file()]
            if src.is_dir()
            else [src, src.with_name("checkpoint.json")]
        )
        same = any(p.exists() and os.path.samestat(mine, os.stat(p)) for p in read)  # hard links too
        if same or (src.is_dir() and target.parent == src.resolve()):
            raise ConversionError(
                f"{shown_path(out)} is one of the files of {shown_path(source)}, which this export reads; "
                "refusing to overwrite it: write elsewhere"
            )
    return path


def _input_size(model: nn.Module, input_size: tuple[int, int, int] | None) -> tuple[int, int, int]:
    card = card_of(model)
    size = input_size or (card.input_size if card is not None else None)
    if size is None or len(size) != 3:
        raise ConversionError("give input_size=(C, H, W): the model has no model card with an input size")
    return tuple(int(s) for s in size)


def _name(model: nn.Module) -> str:
    card = card_of(model)
    return card.model if card is not None else type(model).__name__


def onnx_bytes(
    model: nn.Module,
    input_size: tuple[int, int, int] | None = None,
    dynamic_batch: bool = True,
    opset: int = DEFAULT_OPSET,
    optimize: bool = True,
) -> bytes:
    """The serialised ONNX model: input ``images`` (batch, C, H, W) float32 -> ``logits`` (batch, classes).

    ``optimize`` runs the exporter's graph optimiser (constant folding: e.g. LeNet-5's C3 placement matmul
    becomes one dense kernel). onnxruntime folds the same constants when it loads a model, so for an
    in-memory onnxruntime session ``optimize=False`` gives the same speed and halves the export time
    (VGG-16: 2.9 s instead of 6.7 s); files on disk are optimised for other runtimes' sake."""
    c, h, w = _input_size(model, input_size)
    model = model.eval()
    example = torch.zeros(2 if dynamic_batch else 1, c, h, w, device=next(model.parameters()).device)
    dynamic = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    try:
        # The exporter logs progress on stdout and warns about its internals; neither helps a user.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                None,
                dynamo=True,
                opset_version=opset,
                input_names=["images"],
                output_names=["logits"],
                dynamic_shapes=dynamic,
                optimize=optimize,
                verbose=False,
            )
    except Exception as e:  # noqa: BLE001 — torch.export raises many kinds; all mean "cannot export"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConversionError(f"{_name(model)}: ONNX export failed: {first}") from e
    return program.model_proto.SerializeToString()


def verify_onnx(
    model: nn.Module,
    session,
    input_size: tuple[int, int, int],
    batch_sizes: tuple[int, ...] = (1, 3),
    atol: float = ONNX_ATOL,
    name: str | None = None,
) -> float:
    """Run the onnxruntime ``session`` and the PyTorch ``model`` on the same random inputs (seeded) and
    return the largest absolute difference of the logits; raise :class:`ConversionError` above
    ``atol × max(1, max |logit|)``."""
    g = torch.Generator().manual_seed(0)
    worst, scale = 0.0, 1.0
    for n in batch_sizes:
        x = torch.randn(n, *input_size, generator=g)
        with torch.inference_mode():
            expected = model.eval()(x.to(next(model.parameters()).device)).float().cpu()
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
        if got.shape != expected.shape:
            raise ConversionError(
                f"{name or _name(model)}: onnxruntime output {tuple(got.shape)} != PyTorch {tuple(expected.shape)}"
            )
        worst = max(worst, (got - expected).abs().max().item())
        scale = max(scale, expected.abs().max().item())
    # float32 rounding grows with the logits' size: a deep random-init ResNet-101 gives logits near 180, and
    # 100 layers of reordered sums differ by ~1e-6 of that. So the tolerance is absolute for logits within
    # ±1 and relative beyond.
    if not worst <= atol * scale:  # also catches NaN
        raise ConversionError(
            f"{name or _name(model)}: onnxruntime differs from PyTorch by {worst:.3g} "
            f"(tolerance {atol:g} × max(1, max |logit|) = {atol * scale:.3g})"
        )
    return worst


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: tuple[int, int, int] | None = None,
    dynamic_batch: bool = True,
    opset: int = DEFAULT_OPSET,
    atol: float = ONNX_ATOL,
    optimize: bool = True,
) -> ExportResult:
    """Write ``model`` as one self-contained ONNX file and check it with onnxruntime at batch 1 and 3
    (batch 1 only when ``dynamic_batch=False``). A model whose card has ``test_flip`` is exported with its
    test-time flip (:func:`cnnzoo.tta.for_prediction`): the file predicts as ``cnnzoo predict`` does.
    Raises :class:`ConversionError` if they differ by > atol."""
    import onnxruntime as ort

    model = for_prediction(model)  # a card with test_flip: the graph holds the flip and the mean too
    size = _input_size(model, input_size)
    proto = onnx_bytes(model, size, dynamic_batch=dynamic_batch, opset=opset, optimize=optimize)
    path = Path(path)
    atomic_write(path, proto)
    session = ort.InferenceSession(proto, providers=["CPUExecutionProvider"])  # any file name, UTF-8 or not
    diff = verify_onnx(model, session, size, batch_sizes=(1, 3) if dynamic_batch else (1,), atol=atol)
    return ExportResult(path, "onnx", diff, path.stat().st_size)


def export_safetensors(model: nn.Module, path: str | Path, metadata: dict | None = None) -> ExportResult:
    """The weights (state_dict) as safetensors: no code, no pickle. ``metadata`` (a checkpoint's JSON: model,
    model_kwargs, input_size, classes, mean, std) goes into the header under ``"cnnzoo"``, which is where
    ``cnnzoo.checkpoint.load_checkpoint`` looks for it, so the file alone is a loadable checkpoint."""
    from safetensors.torch import save

    path = Path(path)
    # clone: safetensors refuses tensors that share storage (tied weights); state_dict() names them all
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    header = {"format": "pt", "cnnzoo": json.dumps(metadata or {"model": _name(model)}, default=list)}
    atomic_write(path, save(tensors, metadata=header))  # serialised in memory: a full disk loses nothing
    return ExportResult(path, "safetensors", None, path.stat().st_size)


def load_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a safetensors file: (tensors, cnnzoo metadata). Pickle-based files are refused unopened."""
    from .checkpoint import read_safetensors, refuse_pickle

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    refuse_pickle(path)
    tensors, meta, _ = read_safetensors(path)
    return tensors, meta if isinstance(meta, dict) else {}


def export_torchscript(
    model: nn.Module,
    path: str | Path,
    input_size: tuple[int, int, int] | None = None,
    atol: float = ONNX_ATOL,
) -> ExportResult:
    """A traced TorchScript file (``torch.jit.load``-able from C++). TorchScript is deprecated in torch 2.x:
    prefer ONNX or safetensors. Checked by reloading it and comparing with the model at batch 3."""
    c, h, w = _input_size(model, input_size)
    model = for_prediction(model).eval()
    path = Path(path)
    g = torch.Generator().manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice; the docstring says it
        with torch.no_grad():
            traced = torch.jit.trace(model, torch.randn(2, c, h, w, generator=g))
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
        atomic_write(path, buf.getvalue())
        reloaded = torch.jit.load(io.BytesIO(buf.getvalue()))  # our own bytes, just written
    x = torch.randn(3, c, h, w, generator=g)
    with torch.no_grad():
        diff = (reloaded(x) - model(x)).abs().max().item()
    if not diff <= atol:
        raise ConversionError(
            f"{_name(model)}: TorchScript output differs by {diff:.3g} (tolerance {atol:g})"
        )
    return ExportResult(path, "torchscript", diff, path.stat().st_size)
