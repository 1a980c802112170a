"""Outputs the recorder knows by rule for functions called in a forward on meta tensors, where PyTorch's
meta forms are Python decompositions (a same-shape addition ~100 µs, batch norm ~6 ms, attention a dozen
operations): the output's shape, and the cost and the parameters noted on the dispatcher-level counter as
it would have noted them."""

from __future__ import annotations

import torch

from .._torch_compat import DisableTorchDispatch
from .dispatch import attention_cost
from .schema import ReceptiveField

__all__ = ["SHAPE_KEEPING_FUNCS", "same_shape_binary", "shape_keeping", "attention"]

_Tensor = torch.Tensor
_no_dispatch = DisableTorchDispatch

# Elementwise ops outside leaves (residual additions): when both operands have the same shape, the result
# has it too, and PyTorch's meta kernels (Python broadcast checks, ~100 µs a call) can be skipped.
_INPLACE_BINARY = {"add_", "__iadd__", "sub_", "__isub__", "mul_", "__imul__"}
_BINARY = {"add", "__add__", "__radd__", "sub", "__sub__", "mul", "__mul__", "__rmul__"}
_BINARY_OPS = _INPLACE_BINARY | _BINARY
# Functions whose output has their first argument's shape: FLOPs per element (the rules' conventions)
SHAPE_KEEPING_FUNCS = {
    "batch_norm": 2,
    "layer_norm": 2,
    "group_norm": 2,
    "instance_norm": 2,
    "relu": 1,
    "relu_": 1,
    "relu6": 1,
    "hardswish": 1,
    "hardsigmoid": 1,
    "sigmoid": 1,
    "sigmoid_": 1,
    "tanh": 1,
    "gelu": 1,
    "silu": 1,
    "mish": 1,
    "leaky_relu": 1,
    "elu": 1,
    "dropout": 0,
    "hardtanh": 1,
    "hardtanh_": 1,
}


def same_shape_binary(op: str, args, kwargs) -> torch.Tensor | None:
    """The result of ``a + b`` (and the like) for two meta tensors of one shape and dtype, without
    PyTorch's meta kernel; None for anything else."""
    if op not in _BINARY_OPS or len(args) != 2 or (kwargs and set(kwargs) != {"alpha"}):
        return None
    a, b = args
    if not (isinstance(a, _Tensor) and isinstance(b, _Tensor) and a.is_meta and b.is_meta):
        return None
    if a.shape != b.shape or a.dtype != b.dtype:
        return None
    if op in _INPLACE_BINARY:
        return a
    with _no_dispatch():
        return torch.empty_strided(a.size(), a.stride(), dtype=a.dtype, device=a.device)


def shape_keeping(rec, op: str, args, kwargs) -> torch.Tensor | None:
    """``F.batch_norm``, ``F.hardswish`` … on a meta tensor (timm calls them functionally): the input's
    shape by rule, their cost and the parameters they use noted as the counter would have (PyTorch's
    meta batch norm is a Python decomposition, ~6 ms a call)."""
    x = args[0] if args else None
    if not isinstance(x, _Tensor) or not x.is_meta:
        return None
    ops = rec.ops
    sizes = rec.param_sizes
    ops.params_used.extend(id(a) for a in (*args, *(kwargs or {}).values()) if id(a) in sizes)
    ops.flops += SHAPE_KEEPING_FUNCS[op] * x.numel()
    if op.endswith("_") or (kwargs or {}).get("inplace"):
        return x
    with _no_dispatch():
        return torch.empty_strided(x.size(), x.stride(), dtype=x.dtype, device=x.device)


def attention(rec, args) -> torch.Tensor | None:
    """``F.scaled_dot_product_attention`` on meta tensors (its meta form is a Python decomposition of a
    dozen operations): the output's shape, the cost of the two products (as the counter's rule for the
    fused kernels), and a field that sees the whole input (every position attends to every other)."""
    q, k, v = (args + (None, None, None))[:3]
    if not all(isinstance(t, _Tensor) and t.is_meta for t in (q, k, v)):
        return None
    macs, flops = attention_cost(q, k, v)
    rec.ops.macs += macs
    rec.ops.flops += flops
    with _no_dispatch():
        out = torch.empty((*q.shape[:-1], v.shape[-1]), dtype=q.dtype, device=q.device)
    rf = rec.rf.get(id(q)) or rec.rf.get(id(k))
    if rf is not None:
        whole = rec.ops.whole
        rec.set_rf(out, ReceptiveField(whole, rf.jump, tuple(s / 2 for s in whole)))
    return out
