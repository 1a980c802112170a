"""Does a weights file fit its model, before a byte of its data is trusted?

``load_checkpoint`` builds the model on the meta device (no memory), then:

- :func:`check_declared`: the file's header names every tensor of the model with its shape and dtype, no
  more, no less (a tensor relabelled I32 with the right shape would load as garbage integers turned into
  floats: ``predict`` printed ``nan`` and ``export`` an ONNX file "matching" PyTorch);
- :func:`check_input_size`: the metadata's ``input_size`` has the model's channel count and the model can
  run on it, and neither one input nor the largest activation of a batch of one exceeds
  :data:`MAX_ACTIVATION_BYTES`; a ``checkpoint.json`` saying [1, 8192, 8192] made predict allocate 4 GB
  and [64, 8192, 8192] made export ask for 34 GB;
- after the data is read, :func:`check_finite`: NaN or infinite weights are refused (every answer would be
  NaN).

Each failure is one :class:`~cnnzoo.errors.CheckpointError` line naming the file and the tensor.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError
from .files import SafetensorsHeader

__all__ = ["MAX_ACTIVATION_BYTES", "check_declared", "check_input_size", "check_finite", "DTYPE_NAMES"]

# One float32 input, or the largest single activation of a batch of one: the zoo's largest (VGG-19 at
# 224×224, 64×224×224 floats) is 12.8 MB; 1 GiB leaves room for big inputs while a checkpoint cannot make a
# shared machine allocate tens of GB.
MAX_ACTIVATION_BYTES = 1 << 30
DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def check_declared(skeleton: nn.Module, header: SafetensorsHeader, model_name: str) -> None:
    """The header's tensors are the model's state dict: the same names, shapes and dtypes."""
    where = f"{header.path}: weights do not fit model {model_name!r}"
    expected = skeleton.state_dict()
    got = header.tensors
    missing, unexpected = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys())
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: {len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
            f"(e.g. {[k[:80] for k in unexpected[:2]]})"
        )
    wrong = [k for k in expected if tuple(expected[k].shape) != got[k].shape]
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"{where}: {k} has shape {list(got[k].shape)}, the model expects {list(expected[k].shape)} "
            f"({len(wrong)} tensor(s) differ)"
        )
    wrong = [k for k in expected if DTYPE_NAMES.get(expected[k].dtype) != got[k].dtype]
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"{where}: {k} is stored as {got[k].dtype}, the model's is {DTYPE_NAMES.get(expected[k].dtype)} "
            f"({len(wrong)} tensor(s) differ)"
        )


def check_input_size(skeleton: nn.Module, input_size: tuple[int, int, int], source: Path | str) -> int | None:
    """Run the meta-device model on one input of ``input_size`` and bound what it allocates; returns its
    number of outputs (None for a model whose output is not (N, classes))."""
    c, h, w = input_size
    shown = list(input_size)
    first = next((m for m in skeleton.modules() if isinstance(m, nn.Conv2d | nn.Linear)), None)
    expects = getattr(first, "in_channels", None)
    if expects is not None and expects != c:
        raise CheckpointError(f"{source}: input_size {shown} has {c} channel(s), the model takes {expects}")
    if c * h * w * 4 > MAX_ACTIVATION_BYTES:
        raise CheckpointError(
            f"{source}: input_size {shown} is {c * h * w * 4 / 2**30:.1f} GiB per image, more than the limit "
            f"of {MAX_ACTIVATION_BYTES / 2**30:g} GiB"
        )
    largest = [0, ""]

    def measure(module, args, output) -> None:
        for t in output if isinstance(output, tuple | list) else (output,):
            if isinstance(t, torch.Tensor) and t.numel() * t.element_size() > largest[0]:
                largest[:] = [t.numel() * t.element_size(), type(module).__name__]

    hooks = [m.register_forward_hook(measure) for m in skeleton.modules()]
    try:
        with torch.no_grad():
            out = skeleton.eval()(torch.empty(1, c, h, w, device="meta"))
    except Exception as e:  # noqa: BLE001 — a shape error from any layer: the size does not fit the model
        lines = str(e).strip().splitlines()
        detail = lines[0][:200] if lines else type(e).__name__
        raise CheckpointError(f"{source}: the model cannot take input_size {shown}: {detail}") from None
    finally:
        for hook in hooks:
            hook.remove()
    if largest[0] > MAX_ACTIVATION_BYTES:
        raise CheckpointError(
            f"{source}: input_size {shown} makes a {largest[1]} output of {largest[0] / 2**30:.1f} GiB per "
            f"image, more than the limit of {MAX_ACTIVATION_BYTES / 2**30:g} GiB"
        )
    return int(out.shape[1]) if isinstance(out, torch.Tensor) and out.ndim >= 2 else None


def check_finite(tensors: dict[str, torch.Tensor], source: Path | str) -> None:
    """Refuse NaN or infinite values in floating-point tensors."""
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(
            f"{source}: {len(bad)} tensor(s) hold NaN or infinite values (e.g. {bad[0]}): the weights are "
            "broken (a diverged run?)"
        )
