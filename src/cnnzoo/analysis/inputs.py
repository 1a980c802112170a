"""The analyzer's input: ``C×H×W``, ``N×C×H×W`` (figures stay per image), ``C×L``, ``C×D×H×W``.

Four numbers are ``N×C×H×W`` unless the model's first weighted layer is a 3-D convolution (then
``C×D×H×W``); five are ``N×C×D×H×W``. The analysis runs one sample (batch 1): every figure is per sample, and
the batch is reported beside them.

Several inputs (``[(3, 224, 224), (10,)]``, ``--input 3x224x224 --input 10``) are passed to ``forward`` in order,
each as one sample of any number of dimensions; ``dtype`` (one, or one per input: ``"int64"`` for token
indices) makes them other than float32.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ShapeError
from ..shapes import parse_input_size

__all__ = ["parse_input", "parse_inputs", "several"]


def _dims(spec) -> tuple[int, ...]:
    if isinstance(spec, (tuple, list)):
        parts = list(spec)
    else:
        parts = str(spec).lower().replace("×", "x").replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise ShapeError(f"input size {spec!r} is not of the form CxHxW, e.g. 1x32x32") from None
    if len(dims) != 3 and (not dims or min(dims) < 1 or max(dims) > 1 << 16):  # (C×H×W: parse_input_size's)
        raise ShapeError(f"input size {spec!r}: each dimension must be between 1 and 65536")
    return dims


def _volumetric(model: nn.Module | None) -> bool:
    """Whether the model's first weight is a 3-D convolution's (5 dimensions)."""
    if model is None:
        return False
    first = next((p for p in model.parameters() if p.dim() > 1), None)
    return first is not None and first.dim() == 5


def parse_input(spec, model: nn.Module | None = None) -> tuple[int, tuple[int, ...]]:
    """(batch, one sample's dims) of an input size: ``"3x224x224"`` -> (1, (3, 224, 224)); ``"8x3x32x32"``
    -> (8, (3, 32, 32)); ``"2x100"`` -> (1, (2, 100)) (C×L)."""
    dims = _dims(spec)
    if len(dims) == 3:
        return 1, parse_input_size(dims)
    if len(dims) == 2:
        return 1, dims
    if len(dims) == 4:
        return (1, dims) if _volumetric(model) else (dims[0], dims[1:])
    if len(dims) == 5:
        return dims[0], dims[1:]
    raise ShapeError(f"input size {spec!r}: expected C×L, C×H×W, N×C×H×W or C×D×H×W")


DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")


def _dtype(d) -> torch.dtype:
    if isinstance(d, torch.dtype):
        return d
    name = str(d).removeprefix("torch.")
    if name not in DTYPES:
        raise ShapeError(f"unknown dtype {d!r}: one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def several(spec) -> bool:
    """Whether ``spec`` lists several input sizes (``[(3, 224, 224), (10,)]``, ``["3x224x224", "10"]``)."""
    return isinstance(spec, list) and bool(spec) and all(isinstance(e, (tuple, list, str)) for e in spec)


def parse_inputs(spec, dtype=None, model: nn.Module | None = None) -> tuple[int, tuple[int, ...], tuple]:
    """(batch, the first input's dims, ``((dims, dtype), …)`` for every input) — the last empty for one
    float32 input, the usual case; several inputs have a batch of one."""
    dtypes = [_dtype(d) for d in (dtype if isinstance(dtype, (list, tuple)) else [dtype] if dtype else [])]
    if not several(spec) and len(_dims(spec)) == 1:  # one sequence of L values (token indices)
        spec = [spec]
    if not several(spec):
        batch, size = parse_input(spec, model)
        if not dtypes or dtypes == [torch.float32]:
            return batch, size, ()
        return batch, size, ((size, dtypes[0]),)
    sizes = [_dims(e) for e in spec]
    if len(dtypes) > len(sizes):
        raise ShapeError(f"{len(dtypes)} dtypes for {len(sizes)} inputs")
    dtypes += [torch.float32] * (len(sizes) - len(dtypes))
    return 1, sizes[0], tuple(zip(sizes, dtypes, strict=True))
