"""Counting conventions: the MACs and parameters that torchinfo, fvcore, ptflops, thop or a paper would report.

The tools disagree because they count different operations, not because any of them is wrong. Each convention
here re-applies one tool's rules, from its source (torchinfo 1.8, fvcore 0.1.5, ptflops 0.7.5, thop 0.1.1), to
one meta forward of the model: forward hooks see every module call (torchinfo, ptflops and thop count by
module), a :class:`~torch.overrides.TorchFunctionMode` sees every function call (fvcore traces ATen operators;
ptflops also patches some functions of ``torch.nn.functional`` and ``torch``). A module or function the tool
counts but whose rule is not reproduced here is refused by name, never counted as zero.

- ``paper``: multiply-adds of convolutions and fully connected layers, nothing else (He et al. 2015).
- ``torchinfo``: per leaf module, its ``weight``/``bias`` elements × output positions (a conv's bias too,
  a batch norm's 2·C); every parameter.
- ``fvcore``: one "flop" per MAC of conv, linear, matmul, bmm; batch norm 2 per element (1 without affine),
  layer/group norm 5 (4), instance norm 5 (4), adaptive average pooling 1 per input element, upsampling;
  nothing for activations, pooling, adds.
- ``ptflops``: conv MACs + one per output for a bias, batch norm 2 per input element, activations one per
  output and pooling one per input element, counted twice where a module calls a function ptflops also
  patches (``nn.ReLU`` calls ``F.relu``); ``torch.add``/``x.add``, ``torch.matmul``/``x.matmul``,
  ``mul``, ``addmm`` as written, not ``x + y`` or ``x @ y``; trainable parameters only.
- ``thop``: conv and linear MACs without bias, batch norm 4 per element (affine), average pools; 0 for
  ReLU, max pooling and anything outside a module (the residual add); parameters of the modules it has a
  rule for.
"""

from __future__ import annotations

import copy
import dis
import math
import sys
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import CnnzooError

__all__ = [
    "CONVENTIONS",
    "ConventionCount",
    "UnsupportedByConvention",
    "count",
    "record",
    "recording",
    "for_summary",
]

CONVENTIONS = ("cnnzoo", "paper", "torchinfo", "fvcore", "ptflops", "thop")


class UnsupportedByConvention(CnnzooError):
    """A module or function the tool counts, whose rule this module does not reproduce."""


@dataclass
class ConventionCount:
    convention: str
    macs: int
    params: int
    items: list[tuple[str, str, int]] = field(default_factory=list)  # (row, operation kind, count)

    def by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, kind, n in self.items:
            out[kind] = out.get(kind, 0) + n
        return out

    def by_row(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row, _, n in self.items:
            out[row] = out.get(row, 0) + n
        return out

    def to_dict(self) -> dict:
        return {"name": self.convention, "macs": self.macs, "params": self.params, "by_kind": self.by_kind()}


@dataclass
class _Call:
    row: str  # the module's name (#2 for a second call), or the module it ran in + "." + the function
    target: object  # the module, or the function
    args: tuple
    kwargs: dict
    out: object
    operator: bool = False  # a function reached by operator syntax (x + y, x @ y), not by name


@dataclass
class Recording:
    model: nn.Module
    modules: list[_Call]
    functions: list[_Call]


_OPERATOR_OPS = {"BINARY_OP", "BINARY_ADD", "BINARY_MULTIPLY", "BINARY_MATRIX_MULTIPLY", "INPLACE_ADD"}
_op_cache: dict = {}


def _by_operator(frame) -> bool:
    """Whether the Python frame that called a tensor method did so by an operator (``x + y``)."""
    if frame is None:
        return False
    code = frame.f_code
    ops = _op_cache.get(code)
    if ops is None:
        ops = _op_cache[code] = {i.offset: i.opname for i in dis.get_instructions(code)}
    return ops.get(frame.f_lasti) in _OPERATOR_OPS


class _Functions(TorchFunctionMode):
    def __init__(self, stack: list[str], calls: list[_Call]):
        super().__init__()
        self.stack, self.calls = stack, calls

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if not name.startswith("__") and name not in ("size", "dim", "numel"):
            where = self.stack[-1] if self.stack else ""
            op = name in ("add", "mul", "matmul") and _by_operator(sys._getframe(1))
            self.calls.append(_Call(f"{where}.{name}" if where else name, func, args, kwargs, out, op))
        return out


def record(model: nn.Module, inputs: list[torch.Tensor]) -> Recording:
    """One meta forward of a copy of ``model`` (eval mode) with every module and function call recorded."""
    # a meta twin of every tensor in the memo: the copy never holds the weights' data
    memo: dict = {id(b): torch.empty_like(b, device="meta") for b in model.buffers()}
    memo.update(
        (id(p), nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)) for p in model.parameters()
    )
    work = copy.deepcopy(model, memo).to("meta").eval()
    stack: list[str] = []
    modules: list[_Call] = []
    functions: list[_Call] = []
    times: dict[str, int] = {}

    def pre(m, args, name):
        n = times[name] = times.get(name, 0) + 1
        stack.append(name if n == 1 else f"{name}#{n}")

    def post(m, args, out, name):
        modules.append(_Call(stack.pop(), m, args, {}, out))

    handles = []
    for name, m in work.named_modules():
        name = name or type(m).__name__
        handles.append(m.register_forward_pre_hook(lambda m, a, n=name: pre(m, a, n)))
        handles.append(m.register_forward_hook(lambda m, a, o, n=name: post(m, a, o, n)))
    try:
        with torch.no_grad(), _Functions(stack, functions):
            work(*[x.to("meta") for x in inputs])
    finally:
        for h in handles:
            h.remove()
    return Recording(work, modules, functions)


def _t(x) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)):
        return next((t for t in map(_t, x) if t is not None), None)
    return None


def _n(shape) -> int:
    return math.prod(shape)


def _leaf(m: nn.Module) -> bool:
    return next(m.children(), None) is None


_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONVT = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
# a set of types, filled line by line (not one per line)
_MAXPOOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
            nn.AdaptiveMaxPool3d)  # fmt: skip
_AVGPOOL = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE_AVG = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
_RECURRENT = (nn.RNN, nn.GRU, nn.LSTM, nn.RNNCell, nn.GRUCell, nn.LSTMCell, nn.MultiheadAttention)


def _conv_macs(m, x, y) -> int:
    positions = _n(x.shape[2:]) if isinstance(m, _CONVT) else _n(y.shape[2:])
    return x.shape[0] * positions * m.weight.numel()


def _refuse(tool: str, what: str, where: str):
    raise UnsupportedByConvention(
        f"cannot reproduce {tool}'s count for {what} (at {where!r}): use --convention cnnzoo"
    )


# ---- paper ---------------------------------------------------------------------------------------------

_CONV_FUNCS = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}


# functions whose own convolutions and matrix products run inside them, out of the function mode's sight
_HIDDEN = {"multi_head_attention_forward"}


def _paper(rec: Recording) -> ConventionCount:
    items = []
    for c in rec.functions:
        name = getattr(c.target, "__name__", "")
        if name in _HIDDEN:
            _refuse("the paper convention", name, c.row.rsplit(".", 1)[0])
        if name in _CONV_FUNCS:
            x, w, y = c.args[0], c.args[1], c.out
            transposed = name.startswith("conv_transpose")
            # (row, kind, MACs): kept on two lines
            items.append((c.row.rsplit(".", 1)[0], "convolution",
                          x.shape[0] * _n((x if transposed else y).shape[2:]) * w.numel()))  # fmt: skip
        elif name == "linear":
            items.append(
                (c.row.rsplit(".", 1)[0], "fully connected", _n(c.args[0].shape) * c.args[1].shape[0])
            )
    params = sum(p.numel() for p in rec.model.parameters())
    return ConventionCount("paper", sum(n for *_, n in items), params, items)


# ---- torchinfo -----------------------------------------------------------------------------------------


def _torchinfo(rec: Recording) -> ConventionCount:
    items = []
    for c in rec.modules:
        m = c.target
        if not _leaf(m):
            continue
        y = _t(c.out)
        if y is None:
            continue
        for pname, p in m.named_parameters():
            if pname in ("weight", "bias"):
                if "Conv" in type(m).__name__:
                    n = p.numel() * y.shape[0] * _n(y.shape[2:])
                else:
                    n = y.shape[0] * p.numel()
            elif "weight" in pname or "bias" in pname:
                n = _n(y.shape[:2]) * p.numel()
            else:
                continue
            items.append((c.row, f"{type(m).__name__} {pname.split('.')[-1]}", n))
    # the root's "leftover" parameters cover every module that did not run (an auxiliary head in eval mode)
    params = sum(p.numel() for p in rec.model.parameters())
    return ConventionCount("torchinfo", sum(n for *_, n in items), params, items)


# ---- fvcore --------------------------------------------------------------------------------------------


def _fvcore(rec: Recording) -> ConventionCount:
    items = []
    for c in rec.functions:
        name = getattr(c.target, "__name__", "")
        a = c.args
        where = c.row.rsplit(".", 1)[0]
        if name in _CONV_FUNCS:
            transposed = name.startswith("conv_transpose")
            n = a[0].shape[0] * _n((a[0] if transposed else c.out).shape[2:]) * a[1].numel()
            items.append((where, "convolution", n))
        elif name == "linear":
            items.append((where, "linear", _n(a[0].shape) * a[1].shape[0]))
        elif name in ("matmul", "mm"):
            items.append((where, "matmul", _n(a[0].shape) * a[1].shape[-1]))
        elif name == "bmm":
            items.append((where, "matmul", _n(a[0].shape) * a[1].shape[-1]))
        elif name == "addmm":
            items.append((where, "matmul", _n(a[1].shape) * a[2].shape[-1]))
        elif name == "batch_norm":
            weight = a[3] if len(a) > 3 else c.kwargs.get("weight")
            items.append((where, "batch norm", _n(a[0].shape) * (2 if weight is not None else 1)))
        elif name in ("group_norm", "layer_norm", "instance_norm"):
            i = 1 if name == "instance_norm" else 2  # the weight's place in the call
            weight = a[i] if len(a) > i else c.kwargs.get("weight")
            items.append((where, name.replace("_", " "), _n(a[0].shape) * (5 if weight is not None else 4)))
        elif name in ("einsum", "grid_sample") or name in _HIDDEN:
            _refuse("fvcore", name, where)
        elif name == "adaptive_avg_pool2d":
            items.append((where, "adaptive average pool", _n(a[0].shape)))
        elif name == "interpolate":
            mode = c.kwargs.get("mode", a[3] if len(a) > 3 else "nearest")
            if c.out.dim() == 4 and mode in ("nearest", "bilinear"):
                items.append((where, "upsampling", _n(c.out.shape) * (1 if mode == "nearest" else 4)))
    params = sum(p.numel() for p in rec.model.parameters())
    return ConventionCount("fvcore", sum(n for *_, n in items), params, items)


# ---- ptflops -------------------------------------------------------------------------------------------

_PT_ACT = (nn.ReLU, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.ReLU6, nn.GELU)
_PT_POOL = _MAXPOOL + _AVGPOOL + _ADAPTIVE_AVG
_PT_NORM = _BN + (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm)
# a set of functions, filled line by line (not one per line)
_PT_FUNCS = {F.relu, F.prelu, F.elu, F.relu6, F.gelu, F.silu, F.softmax, F.avg_pool1d, F.avg_pool2d,
             F.avg_pool3d, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_avg_pool1d,
             F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool1d, F.adaptive_max_pool2d,
             F.adaptive_max_pool3d}  # fmt: skip
_PT_TENSOR = {torch.matmul, torch.Tensor.matmul, torch.mm, torch.Tensor.mm, torch.bmm, torch.Tensor.bmm}
_PT_ADDMM = {torch.addmm, torch.baddbmm, torch.Tensor.addmm}
_PT_ELEMENTWISE = {torch.mul, torch.Tensor.mul, torch.add, torch.Tensor.add}


def _broadcast(a, b) -> int:
    if not isinstance(a, torch.Tensor):
        return _n(b.shape) if isinstance(b, torch.Tensor) else 1
    if not isinstance(b, torch.Tensor):
        return _n(a.shape)
    return _n(torch.broadcast_shapes(a.shape, b.shape))


def _ptflops_module(m, x, y, row) -> tuple[str, int] | None:
    t = type(m)
    if t in _CONV or t in _CONVT:
        bias = _n(y.shape) if m.bias is not None else 0
        return "convolution", _conv_macs(m, x, y) + bias
    if t is nn.Linear:
        return "linear", (x.shape[-1] * y.shape[-1] + (y.shape[-1] if m.bias is not None else 0)) * _n(
            x.shape[:-1]
        )
    if t in _PT_ACT:
        return "activation", _n(y.shape)
    if t in _PT_POOL:
        return "pooling", _n(x.shape)
    if t in _PT_NORM:
        return "normalisation", _n(x.shape) * (2 if getattr(m, "affine", False) else 1)
    if t is nn.Upsample:
        return "upsampling", _n(y.shape)
    if t in _RECURRENT or t.__name__ in ("DeformConv2d", "Attention"):
        _refuse("ptflops", t.__name__, row)
    return None


def _ptflops(rec: Recording) -> ConventionCount:
    items = []
    for c in rec.modules:  # a supported module counts; its children then are not asked
        r = _ptflops_module(c.target, _t(c.args), _t(c.out), c.row)
        if r is not None:
            items.append((c.row, *r))
    for c in rec.functions:
        f, a = c.target, c.args
        where = c.row.rsplit(".", 1)[0]
        if f in _PT_FUNCS:
            kind = "pooling" if "pool" in f.__name__ else "activation"
            items.append((where, f"{kind} (function)", _n(a[0].shape)))
        elif f is F.interpolate:
            items.append((where, "upsampling (function)", _n(c.out.shape)))
        elif f in _PT_TENSOR and not c.operator:
            items.append((where, "matmul", _n(a[0].shape) * a[1].shape[-1]))
        elif f in _PT_ADDMM:
            beta = c.kwargs.get("beta", 1)
            items.append((where, "matmul", _n(a[1].shape) * a[2].shape[-1] + (_n(a[0].shape) if beta else 0)))
        elif f in _PT_ELEMENTWISE and not c.operator:
            items.append((where, "elementwise", _broadcast(a[0], a[1] if len(a) > 1 else c.kwargs["other"])))
    params = sum(p.numel() for p in rec.model.parameters() if p.requires_grad)
    return ConventionCount("ptflops", sum(n for *_, n in items), params, items)


# ---- thop ----------------------------------------------------------------------------------------------

_THOP_NORM = _BN + (nn.LayerNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
_THOP_ZERO = (nn.ZeroPad2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Dropout, nn.PixelShuffle) + _MAXPOOL
_UPSAMPLE = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 259, "trilinear": 31}


def _thop_module(m, x, y, row) -> tuple[str, int] | None:
    t = type(m)
    if t in _CONV or t in _CONVT:
        return "convolution", _n(y.shape) * (x.shape[1] // m.groups) * _n(m.weight.shape[2:])
    if t is nn.Linear:
        return "linear", m.in_features * _n(y.shape)
    if t in _THOP_NORM:
        affine = getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)
        return "normalisation", 2 * _n(x.shape) * (2 if affine else 1)
    if t is nn.PReLU:
        return "activation", _n(x.shape)
    if t is nn.Softmax:
        k = x.shape[m.dim]
        return "softmax", (_n(x.shape) // k) * (3 * k - 1)
    if t in _AVGPOOL:
        return "average pool", _n(y.shape)
    if t in _ADAPTIVE_AVG:
        kernel = math.prod(a / b for a, b in zip(x.shape[2:], y.shape[2:], strict=True))
        return "adaptive average pool", int((kernel + 1) * _n(y.shape))
    if t in (nn.Upsample, nn.UpsamplingBilinear2d, nn.UpsamplingNearest2d):
        return "upsampling", _n(y.shape) * _UPSAMPLE.get(m.mode, 0)
    if t in _THOP_ZERO:
        return "zero", 0
    if t in _RECURRENT and t is not nn.MultiheadAttention:
        _refuse("thop", t.__name__, row)
    return None


def _thop(rec: Recording) -> ConventionCount:
    items = []
    ruled: dict[int, nn.Module] = {}
    for c in rec.modules:
        r = _thop_module(c.target, _t(c.args), _t(c.out), c.row)
        if r is not None:
            items.append((c.row, *r))
            ruled[id(c.target)] = c.target

    def params(m: nn.Module) -> int:  # thop's walk: stop at a module with a rule, else into its children
        return sum(
            sum(p.numel() for p in child.parameters()) if id(child) in ruled else params(child)
            for child in m.children()
        )

    return ConventionCount("thop", sum(n for *_, n in items), params(rec.model), items)


RULES = {"paper": _paper, "torchinfo": _torchinfo, "fvcore": _fvcore, "ptflops": _ptflops, "thop": _thop}


def count(model: nn.Module, inputs: list[torch.Tensor], convention: str) -> ConventionCount:
    """The MACs and parameters ``convention`` reports for one forward of ``model`` on ``inputs`` (batch 1)."""
    if convention not in RULES:
        raise CnnzooError(f"unknown convention {convention!r}: one of {', '.join(CONVENTIONS)}")
    return RULES[convention](record(model, inputs))


def recording(model_or_name, model_kwargs: dict, inputs: list) -> Recording:
    """``record`` for a model or a registered name (built on the meta device) and ``[(dims, dtype), …]``."""
    if isinstance(model_or_name, str):
        from ..models.source import resolve_model

        with torch.device("meta"):
            model_or_name = resolve_model(model_or_name, **model_kwargs)
    xs = [torch.empty((1, *dims), dtype=_dtype(t), device="meta") for dims, t in inputs]
    return record(model_or_name, xs)


def _dtype(t) -> torch.dtype:
    return getattr(torch, t) if isinstance(t, str) else t or torch.float32


def for_summary(model_or_name, model_kwargs: dict, inputs: list, convention: str) -> ConventionCount:
    """``count`` for what :func:`cnnzoo.summary` analysed: a registered name is built on the meta device."""
    return RULES[convention](recording(model_or_name, model_kwargs, inputs))
