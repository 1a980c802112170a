"""The forward-time recorder: what runs while an instrumented model's own ``forward`` runs on the meta
device, and records one row per leaf-module call.

Every module that :class:`~cnnzoo.analysis.probe.Probe` instrumented calls :func:`leaf_call` or
:func:`container_call` instead of its forward; both find what they need in one instance attribute
(``TRACE``). Two short paths cover most leaf calls (ResNet-152: 362 of 364): a shape-keeping layer (the
input's shape) and a 4-D map through a plain conv or pool (the output-size arithmetic, inlined). Operations
outside leaves (residual additions, ``torch.flatten``, slicing) are seen by :class:`Recorder`, a
``TorchFunctionMode`` switched off inside leaves, where nothing functional is recorded. The garbage collector
is paused around a whole analysis (:func:`gc_paused`): it allocates ~10k small objects, and a full collection
over all of torch's live objects may otherwise land inside it (seen: 65 ms runs taking 110–400 ms).
"""

from __future__ import annotations

import gc
import math
from contextlib import contextmanager

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .._torch_compat import DisableTorchDispatch, DisableTorchFunction
from ..errors import ShapeError
from ..shapes import conv_output_size
from .rules import Window, functional_cost, window_of
from .schema import LayerInfo, ReceptiveField
from .shortcuts import SHAPE_KEEPING_FUNCS, attention, same_shape_binary, shape_keeping
from .specs import GENERAL, SAME, LeafSpec

_no_torch_function = DisableTorchFunction
_no_dispatch = DisableTorchDispatch
_Tensor = torch.Tensor
_prod = math.prod

# the public names, as a compact list
__all__ = ["Collapse", "ForwardFailed", "Recorder", "TraceResult", "TRACE", "leaf_call", "container_call",
           "per_position_call", "gc_paused"]  # fmt: skip

TRACE = "_cnnzoo_trace"  # the instance attribute with what an instrumented module's call needs


class Collapse(Exception):
    """Raised before a window runs over an input it no longer fits."""

    def __init__(self, layer: str, kind: str, window: Window, in_hw: tuple[int, int]) -> None:
        super().__init__(layer)
        self.layer, self.kind, self.window, self.in_hw = layer, kind, window, in_hw


class ForwardFailed(ShapeError):
    """The model's own forward raised (a shape PyTorch rejects, or weights used outside their layer)."""


def _tensors(obj):
    if isinstance(obj, _Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            if isinstance(o, _Tensor):
                yield o


def _first_tensor(args) -> torch.Tensor | None:
    return next((t for a in args for t in _tensors(a)), None)


def _hw_after(window: Window, hw) -> tuple[int, int]:
    """(H, W) after a window; < 1 means the map collapsed."""
    k, s, p, d, c = window.kernel, window.stride, window.padding, window.dilation, window.ceil_mode
    h = conv_output_size(hw[0], k[0], s[0], p[0], d[0], c)
    return h, conv_output_size(hw[1], k[1], s[1], p[1], d[1], c)


def _sliced(rf: ReceptiveField, index: tuple) -> ReceptiveField:
    """``x[:, :, ::2, ::2]`` (ResNet option-A shortcuts) keeps every s-th unit: the jump grows."""
    jump, start = list(rf.jump), list(rf.start)
    for dim in (0, 1):
        s = index[dim + 2] if len(index) > dim + 2 else slice(None)
        if isinstance(s, slice):
            start[dim] += (s.start or 0) * jump[dim]
            jump[dim] *= s.step or 1
    return ReceptiveField(rf.size, tuple(jump), tuple(start))


_LAYOUT_FLATTEN = {"flatten", "view", "reshape"}
_NOT_RECORDED = {"__get__", "size", "dim"}  # attribute reads, not operations

# -- one run's state, and the operations outside leaves -------------------------------------------------


class TraceResult:
    """What one run saw: the rows, the rows each block's calls produced, the model's parameter totals."""

    def __init__(self, probe) -> None:  # a Probe
        self.rows: list[LayerInfo] = []
        self.blocks = probe.blocks  # name -> residual block (a module of the probe's model)
        # block name -> (first row, end row) of each of its calls
        self.spans: dict[str, list[tuple[int, int]]] = {name: [] for name in probe.blocks}
        self.params, self.trainable_params = probe.params, probe.trainable_params
        self.block_params = probe.block_params  # name -> (params, trainable) under the block


class Recorder(TorchFunctionMode):
    """The state of the run in progress (every instrumented module holds this object; :meth:`start` resets
    it), and the recorder of functional operations outside leaf modules. It holds no module: a module
    holding it, and it the module, would be a reference cycle, freed only by a full garbage collection."""

    def start(self, result: TraceResult) -> None:
        self.rows = result.rows
        self.spans = result.spans
        self.rf: dict[int, ReceptiveField] = {}  # id(tensor) -> its units' receptive field
        self.flat_from: dict[int, tuple[ReceptiveField, tuple[int, int]]] = {}  # flattened maps' geometry
        self.keep: list[torch.Tensor] = []  # holds traced tensors so their ids stay unique
        self.stack: list[str] = []  # the containers being called, innermost last
        self.seen_params: set[int] = set()
        self.calls: dict[str, int] = {}  # row base name -> calls so far
        self.current = ""  # the leaf being called (named in errors)
        if hasattr(self, "ops"):
            self.ops.track(self.rf, self.keep)

    def attach(self, ops, param_sizes: dict) -> None:
        """The dispatcher-level counter (:class:`~cnnzoo.analysis.dispatch.OpCounter`) and the parameters'
        sizes (id -> (numel, requires_grad)), once per probe."""
        self.ops, self.param_sizes = ops, param_sizes

    def set_rf(self, t: torch.Tensor, rf: ReceptiveField | None) -> None:
        if rf is not None:
            self.rf[id(t)] = rf
            self.keep.append(t)

    def count(self, name: str) -> str:
        """The row name of this call: ``name``, then ``name#2``, ``name#3`` … for repeated calls."""
        n = self.calls[name] = self.calls.get(name, 0) + 1
        return name if n == 1 else f"{name}#{n}"

    def new_params(self, own: tuple) -> tuple[int, int]:
        """(all, trainable) of a module's parameters not counted before: a module's count on its first
        call, nothing on later ones, shared parameters once in all."""
        params = trainable = 0
        seen = self.seen_params
        for pid, size, requires_grad in own:
            if pid not in seen:
                seen.add(pid)
                params += size
                trainable += size if requires_grad else 0
        return params, trainable

    # Inside leaves torch-function dispatch is off: only operations in containers' own code land here.
    def __torch_function__(self, func, types, args=(), kwargs=None):
        op = getattr(func, "__name__", "")
        ops = self.ops
        mark = ops.mark()
        out = same_shape_binary(op, args, kwargs)
        if out is None and op in SHAPE_KEEPING_FUNCS:
            out = shape_keeping(self, op, args, kwargs)
            below = mark if out is not None else None
        elif op == "scaled_dot_product_attention":
            out = attention(self, args)
            below = mark if out is not None else None
        if out is None:
            ops.where = f"{self.stack[-1]}.{op.strip('_')}" if self.stack else op.strip("_")
            out = func(*args, **(kwargs or {}))
            below = mark if ops.mark() != mark else None  # what ran below is the row's cost
        elif op in SHAPE_KEEPING_FUNCS or op == "scaled_dot_product_attention":
            pass
        else:  # not dispatched: a parameter added here (a position embedding) is noted by hand
            used = [id(a) for a in args if id(a) in self.param_sizes]
            if used:
                ops.params_used.extend(used)
                ops.flops += _prod(out.shape)  # the addition, as the counter would have counted it
            below = mark if used else None
        if op not in _NOT_RECORDED:
            first = out if isinstance(out, _Tensor) else _first_tensor((out,))
            if first is not None:
                self._functional(op, args, first, below)
        return out

    def claim(self, mark: tuple) -> tuple[int, int, int, int, str]:
        """What the dispatcher-level counter saw since ``mark``: (MACs, FLOPs, parameters, trainable ones,
        the operations it could not count), the parameters each counted once in the whole run."""
        ops = self.ops
        macs, flops = ops.macs - mark[0], ops.flops - mark[1]
        params = trainable = 0
        seen, sizes = self.seen_params, self.param_sizes
        for pid in ops.params_used[mark[2] :]:
            if pid not in seen:
                seen.add(pid)
                n, requires_grad = sizes[pid]
                params += n
                trainable += n if requires_grad else 0
        uncounted = sorted({op for op, _ in ops.uncounted[mark[3] :]})
        note = f"uncounted: {', '.join(uncounted)}" if uncounted else ""
        return macs, flops, params, trainable, note

    def _functional(self, op: str, args, out: torch.Tensor, mark: tuple | None) -> None:
        inputs = [a for a in args if isinstance(a, _Tensor)]
        if len(inputs) < len(args):  # tensors in lists too (torch.cat)
            inputs = [t for a in args for t in _tensors(a)]
        if not inputs and mark is None:
            return
        rf = None
        for t in inputs:
            r = self.rf.get(id(t))
            rf = r if rf is None else rf.merge(r)
        first = inputs[0] if inputs else out
        if op in _LAYOUT_FLATTEN and first.dim() == 4 and out.dim() == 2 and rf is not None:
            self.flat_from[id(out)] = (rf, tuple(first.shape[-2:]))
        elif op == "__getitem__" and rf is not None and first.dim() == 4 and isinstance(args[1], tuple):
            rf = _sliced(rf, args[1])
        elif mark is not None:  # what ran below set it, through its windows (F.max_pool2d, F.conv2d …)
            rf = self.rf.get(id(out), rf)
        self.set_rf(out, rf)
        params = trainable = 0
        note = ""
        if mark is None:  # nothing ran below (a same-shape addition, or no dispatcher work): by rule
            cost = functional_cost(op, tuple(out.shape))
            macs, flops, connections = cost.macs, cost.flops, cost.connections
        else:
            macs, flops, params, trainable, note = self.claim(mark)
            connections = macs
        if flops or macs or params or note:
            short = op.strip("_")
            parent = self.stack[-1] if self.stack else ""
            name = self.count(f"{parent}.{short}" if parent else short)
            # one row in LayerInfo's field order (the hot path: positional, a few lines, not one per field)
            self.rows.append(
                LayerInfo(name, short, "", list(out.shape[1:]), params, trainable, macs, flops, connections,
                          rf, _prod(out.shape[1:]) * out.element_size(), note,
                          "rule" if mark is None else "dispatcher")
            )  # fmt: skip


def _empty_map(like: torch.Tensor, n: int, c: int, h: int, w: int) -> torch.Tensor:
    """A contiguous N×C×H×W tensor of ``like``'s dtype and device (empty_strided: on meta ~40% cheaper than
    empty()), unseen by the dispatcher-level counter."""
    with _no_dispatch():
        return torch.empty_strided(
            (n, c, h, w), (c * h * w, h * w, w, 1), dtype=like.dtype, device=like.device
        )


def _channels_error(name: str, spec: LeafSpec, shape) -> ShapeError:
    return ShapeError(
        f"layer {name!r} ({spec.type}) expects {spec.in_channels} input channel(s) but got {shape[1]} "
        f"(feature map {tuple(shape[1:])})"
    )


def leaf_call(self: nn.Module, *args, **kwargs):
    """An instrumented leaf's call: its output (computed by rule, or by its own forward on meta tensors)
    and a row. Two short paths cover most calls (ResNet-152: 362 of 364 leaves): any tensor through a
    shape-keeping layer (the input's shape, field and flattening), and a 4-D map through a plain conv or
    pool (output size by the arithmetic). Everything else takes :func:`_general_call`."""
    tr, name, spec, own, own_forward = self.__dict__[TRACE]
    tr.current = name
    # nothing inside a leaf is recorded: torch-function dispatch off (else every x.shape below, and
    # every op of the layer, went through the tracer's Python __torch_function__)
    with _no_torch_function():
        x = args[0] if args and isinstance(args[0], _Tensor) else _first_tensor(args)
        path = spec.path
        if x is None or path is GENERAL:
            return _general_call(self, args, kwargs, x)
        shape = x.shape
        if path is SAME:
            with _no_dispatch():
                out = x.detach()  # a new tensor of the same shape (a view: ~4× cheaper than empty)
            out_shape = list(shape[1:])
            in_n = out_n = _prod(out_shape)
            rf = tr.rf.get(id(x))
            flat = tr.flat_from.get(id(x))  # e.g. dropout between a flatten and a full layer
            if flat is not None:
                tr.flat_from[id(out)] = flat
        elif len(shape) == 4:  # _ARITHMETIC
            n, c_in, h, w = shape
            if spec.in_channels is not None and c_in != spec.in_channels:
                raise _channels_error(name, spec, shape)
            kh, kw, sh, sw, ph, pw, dh, dw = spec.geometry
            h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1  # conv_output_size's floor formula
            w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
            if h_out < 1 or w_out < 1:
                raise Collapse(name, spec.type, spec.window, (h, w))
            c_out = spec.out_channels or c_in
            out = _empty_map(x, n, c_out, h_out, w_out)
            out_shape = [c_out, h_out, w_out]
            out_n, in_n = c_out * h_out * w_out, c_in * h * w
            rf = tr.rf.get(id(x))
            if rf is not None:
                rf = rf.through(spec.window)
        else:
            return _general_call(self, args, kwargs, x)
        tr.set_rf(out, rf)
        params, trainable = tr.new_params(own) if own else (0, 0)
        c_macs, c_flops, c_conn, c_flops_in, c_conn_in, per = spec.coefficients
        # one row in LayerInfo's field order (the hot path: positional, a few lines, not one per field)
        tr.rows.append(
            LayerInfo(tr.count(name), spec.type, spec.kernel, out_shape, params, trainable, out_n * c_macs // per,
                      (out_n * c_flops + in_n * c_flops_in) // per, (out_n * c_conn + in_n * c_conn_in) // per,
                      rf, out_n * out.element_size())
        )  # fmt: skip
    return out


def _general_call(self: nn.Module, args, kwargs, x: torch.Tensor | None):
    """A leaf call off the short paths (torch-function dispatch is already off): checks, the output by rule
    or by the layer's own forward on meta tensors, the row."""
    tr, name, spec, own, own_forward = self.__dict__[TRACE]
    window = spec.window
    hw = None
    if x is not None:
        shape = x.shape
        dim = len(shape)
        if spec.in_channels is not None and dim == 4 and shape[1] != spec.in_channels:
            raise _channels_error(name, spec, shape)
        if spec.in_features is not None and shape[-1] != spec.in_features:
            raise ShapeError(
                f"layer {name!r} (Linear) expects {spec.in_features} input features but got "
                f"{shape[-1]}: the classifier head is built for one input size"
            )
        if dim == 4 and spec.adaptive:
            window = window_of(self, (shape[2], shape[3]))
        elif dim == 4 and window is not None:
            hw = _hw_after(window, shape[2:])
            if hw[0] < 1 or hw[1] < 1:
                raise Collapse(name, spec.type, window, (shape[2], shape[3]))
    rule = spec.rule
    mark = None
    if hw is not None and rule == "arithmetic":  # a pool in ceil mode
        out = _empty_map(x, x.shape[0], spec.out_channels or x.shape[1], *hw)
    elif rule == "linear" and x is not None:  # the check above matched x's last dim to in_features
        with _no_dispatch():
            out = torch.empty((*x.shape[:-1], spec.out_features), dtype=x.dtype, device=x.device)
    elif rule == "adaptive" and x is not None and x.dim() == 4:
        n, c, h, w = x.shape
        out = _empty_map(x, n, c, spec.output_hw[0] or h, spec.output_hw[1] or w)
    else:
        ops = tr.ops
        ops.where = name
        mark = ops.mark()
        out = own_forward(*args, **kwargs) if own_forward is not None else spec.forward(self, *args, **kwargs)
    if not isinstance(out, _Tensor):
        first = _first_tensor((out,))
        if first is None:
            return out
        result, out = out, first
    else:
        result = out

    out_shape = out.shape
    in_shape = x.shape if x is not None else out_shape
    rf_in = tr.rf.get(id(x)) if x is not None else None
    rf = rf_in
    if rf_in is not None and window is not None and len(in_shape) == 4:
        rf = rf_in.through(window)
    elif spec.is_linear and x is not None and id(x) in tr.flat_from:
        # A full layer over a flattened H×W map is a conv whose kernel is the whole map (VGG's FC6 = 7×7).
        rf0, flat_hw = tr.flat_from[id(x)]
        rf = rf0.through(Window(flat_hw, (1, 1), (0, 0)))
    if spec.is_flatten and rf_in is not None and len(in_shape) == 4:
        tr.flat_from[id(out)] = (rf_in, tuple(in_shape[-2:]))
    if mark is not None and not spec.known:  # a layer without a rule: the field through what it ran
        rf = tr.rf.get(id(out), rf)
    tr.set_rf(out, rf)

    params, trainable = tr.new_params(own)
    out_n = _prod(out_shape[1:])  # per image
    in_n = _prod(in_shape[1:]) if x is not None else out_n
    note, counted_by = "", "rule"
    if spec.known or mark is None:
        macs, flops, connections = spec.cost(in_n, out_n)
    else:  # a layer without a rule: what its forward ran, as the dispatcher-level counter saw it
        macs, flops, more, more_trainable, note = tr.claim(mark)
        connections, counted_by = macs, "dispatcher"
        params, trainable = params + more, trainable + more_trainable
    kernel = spec.kernel if not spec.adaptive else (window.describe() if window else "")
    # one row in LayerInfo's field order (positional, a few lines, not one per field)
    tr.rows.append(
        LayerInfo(tr.count(name), spec.type, kernel, list(out_shape[1:]), params, trainable, macs, flops,
                  connections, rf, out_n * out.element_size(), note, counted_by)
    )  # fmt: skip
    return result


# -- containers -----------------------------------------------------------------------------------------


def container_call(self: nn.Module, *args, **kwargs):
    """An instrumented container's call: its name on the stack (for functional rows) and, for a block,
    the range of rows its call produced."""
    tr, name, block, forward = self.__dict__[TRACE]
    tr.stack.append(name)
    start = len(tr.rows)
    out = forward(self, *args, **kwargs)
    tr.stack.pop()
    if block:
        tr.spans[name].append((start, len(tr.rows)))
    return out


def per_position_call(self: nn.Module, *args, **kwargs):
    """The call of a container that applies its per-sample layer at every position of an N×C×H×W map, as
    N·H·W rows (``cnnzoo.convert.PerPosition``, e.g. LeNet-5's RBF output in the fully convolutional form).
    The inner layer's rows saw H·W "images" of one vector each; per image, they are an H×W map: their shape
    gains H×W and their counts are H·W times as large."""
    tr = self.__dict__[TRACE][0]
    x = next((a for a in args if isinstance(a, _Tensor)), None)
    start = len(tr.rows)
    out = container_call(self, *args, **kwargs)
    if x is not None and x.dim() == 4:
        h, w = x.shape[2], x.shape[3]
        for row in tr.rows[start:]:
            row.output_shape = [*row.output_shape, h, w]
            row.macs, row.flops, row.connections = (
                row.macs * h * w,
                row.flops * h * w,
                row.connections * h * w,
            )
            row.activation_bytes *= h * w
    return out


@contextmanager
def gc_paused():
    """The cyclic garbage collector off for a burst of allocations (the analysis makes ~10k objects, which
    can trigger a full collection over all of torch's ~340k live objects: 250 ms, 10× the analysis)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
