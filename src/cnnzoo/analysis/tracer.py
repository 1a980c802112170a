"""Runs a model's own ``forward`` on the meta device and records one row per leaf-module call.

Why it looks the way it does — the analyzer must cost ResNet-152 in a few milliseconds, and on the meta
device nothing is computed, so what remains is Python per module (ResNet-152: 423 modules, ~520 calls):

- **One walk to prepare.** :class:`Probe` copies the model to meta (or takes a model the analyzer built on
  meta itself) and instruments each module in the same walk. The copy is the analyzer's own: nothing is
  restored afterwards, and it can run again (the smallest-input search runs it a dozen times).
- **A cheap structural copy**, never ``deepcopy``: new module objects by their ``__dict__``, meta tensors, no
  weight data. Layers whose shape is known by rule keep their original tensors (nothing reads them).
- **No hooks, no wrappers per module.** Each module's class is swapped for a cached subclass whose
  ``forward`` and ``__call__`` are the tracer's (what ``torch.nn.utils.parametrize`` does to a module), so
  a call skips ``Module._call_impl`` too; what it needs sits in one instance attribute. Forward hooks would
  send every call down ``_call_impl``'s slow path (~25 µs of Python each), per-module closures cost time
  to build and, holding their module, form reference cycles that only a full garbage collection frees
  (~250 ms over torch's live objects, inside whatever runs next).
- **Children as plain attributes of the copy**: ``self.conv1`` in the model's forward is then found in the
  instance dict, not by ``Module.__getattr__`` (a Python call; ResNet-152 makes 468 a run).
- **Facts computed once per layer kind, not per call** (:class:`_Spec`): the sliding window, its
  description, the cost rule, the checks. Layers of torch.nn's own classes with equal hyper-parameters
  share them, across analyses too (ResNet-152's 364 leaves have 33 kinds).
- **Shapes by rule** for plain convs and pools (the arithmetic), normalisation and activations (the input's
  shape), linear layers and adaptive pools: PyTorch's meta kernels for these are Python decompositions (batch
  norm alone was ~75% of a ResNet-152 run). The two commonest cases — a 4-D map through a conv or pool, and
  through a shape-keeping layer — take a short path. The tests check every shape against a real forward.
- **The garbage collector is paused** (by ``summary``, around the whole analysis) while it allocates its ~10k
  small objects: otherwise a full collection over all of torch's live objects may land inside it (seen:
  65 ms runs taking 110–400 ms).

Operations outside leaves (residual additions, ``torch.flatten``, slicing) are seen by a
``TorchFunctionMode``, which is switched off inside leaves, where nothing functional is recorded.
"""

from __future__ import annotations

import gc
import math
import weakref
from contextlib import contextmanager
from dataclasses import astuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import ShapeError
from .arithmetic import conv_output_size
from .rules import Window, cost_rule, functional_cost, window_of
from .schema import LayerInfo, ReceptiveField

_no_torch_function = torch._C.DisableTorchFunction
_Tensor = torch.Tensor
_prod = math.prod

__all__ = ["Collapse", "ForwardFailed", "Probe", "TraceResult", "gc_paused", "is_block"]


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


# -- which layers the tracer does not need to run ------------------------------------------------------

# Shape-keeping layers: normalisation (its meta kernels are Python decompositions), activations, dropout
# (the analysis runs in eval mode) and Identity. Recognised by their forward: a subclass that overrides it
# may change the shape, and then runs for real.
_SHAPE_KEEPING = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LocalResponseNorm, nn.GroupNorm,
                  nn.LayerNorm, nn.ReLU, nn.ReLU6, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU,
                  nn.Mish, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softmax, nn.LogSoftmax, nn.Dropout,
                  nn.Dropout2d, nn.Identity)  # fmt: skip
_SHAPE_KEEPING_FORWARDS = {cls.forward for cls in _SHAPE_KEEPING}
# Plain convs and pools: their output shape is the (tested) arithmetic's. Only these exact classes: a
# subclass may compute differently (weight standardisation, say) in a forward or a helper it overrides.
_SHAPE_ARITHMETIC = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _shape_rule(module: nn.Module) -> str | None:
    """How the analyzer knows this leaf's output shape without running it (None: it runs it):
    "arithmetic" (plain conv/pool), "same" (normalisation, activations), "linear" (last dim ->
    out_features), "adaptive" (adaptive pools: the requested size). PyTorch's meta kernels for these are
    Python decompositions: a meta Linear or adaptive pool alone costs ~2 ms."""
    d = module.__dict__
    if "forward" in d:
        return None
    cls = type(module)
    if cls.forward in _SHAPE_KEEPING_FORWARDS:
        return "same"
    if cls in _SHAPE_ARITHMETIC and not d.get("return_indices") and not isinstance(d["padding"], str):
        return "arithmetic"  # not 'same' padding: it may pad unevenly, and the real kernel knows how
    if cls is nn.Linear:
        return "linear"
    if cls in _ADAPTIVE and not d.get("return_indices"):
        return "adaptive"
    return None


# Elementwise ops outside leaves (residual additions): when both operands have the same shape, the result
# has it too, and PyTorch's meta kernels (Python broadcast checks, ~100 µs a call) can be skipped.
_INPLACE_BINARY = {"add_", "__iadd__", "sub_", "__isub__", "mul_", "__imul__"}
_BINARY = {"add", "__add__", "__radd__", "sub", "__sub__", "mul", "__mul__", "__rmul__"}
_BINARY_OPS = _INPLACE_BINARY | _BINARY
_LAYOUT_FLATTEN = {"flatten", "view", "reshape"}
_NOT_RECORDED = {"__get__", "size", "dim"}  # attribute reads, not operations

# -- one run's state, and the operations outside leaves -------------------------------------------------


class TraceResult:
    """What one run saw: the rows, the rows each block's calls produced, the model's parameter totals."""

    def __init__(self, probe: Probe) -> None:
        self.rows: list[LayerInfo] = []
        self.blocks = probe.blocks  # name -> residual block (a module of the probe's model)
        # block name -> (first row, end row) of each of its calls
        self.spans: dict[str, list[tuple[int, int]]] = {name: [] for name in probe.blocks}
        self.params, self.trainable_params = probe.params, probe.trainable_params
        self.block_params = probe.block_params  # name -> (params, trainable) under the block


class _Tracer(TorchFunctionMode):
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
        out = _same_shape_binary(op, args, kwargs)
        if out is None:
            out = func(*args, **(kwargs or {}))
        if op not in _NOT_RECORDED and isinstance(out, _Tensor):
            self._functional(op, args, out)
        return out

    def _functional(self, op: str, args, out: torch.Tensor) -> None:
        inputs = [a for a in args if isinstance(a, _Tensor)]
        if len(inputs) < len(args):  # tensors in lists too (torch.cat)
            inputs = [t for a in args for t in _tensors(a)]
        if not inputs:
            return
        rf = None
        for t in inputs:
            r = self.rf.get(id(t))
            rf = r if rf is None else rf.merge(r)
        first = inputs[0]
        if op in _LAYOUT_FLATTEN and first.dim() == 4 and out.dim() == 2 and rf is not None:
            self.flat_from[id(out)] = (rf, tuple(first.shape[-2:]))
        elif op == "__getitem__" and rf is not None and first.dim() == 4 and isinstance(args[1], tuple):
            rf = _sliced(rf, args[1])
        self.set_rf(out, rf)
        cost = functional_cost(op, tuple(out.shape))
        if cost.flops:
            short = op.strip("_")
            parent = self.stack[-1] if self.stack else ""
            name = self.count(f"{parent}.{short}" if parent else short)
            self.rows.append(
                LayerInfo(name, short, "", list(out.shape[1:]), 0, 0, cost.macs, cost.flops, cost.connections,
                          rf, _prod(out.shape[1:]) * out.element_size())
            )  # fmt: skip


def _same_shape_binary(op: str, args, kwargs) -> torch.Tensor | None:
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
    return torch.empty_strided(a.size(), a.stride(), dtype=a.dtype, device=a.device)


# -- leaves ---------------------------------------------------------------------------------------------

_SAME, _ARITHMETIC, _GENERAL = "same", "arithmetic", "general"  # a leaf's path (_Spec.path)


class _Spec:
    """What a leaf's rows need to know about it that does not change between calls: its window and
    its description, the shape rule, the cost rule, the checks."""

    def __init__(self, module: nn.Module) -> None:
        d = module.__dict__  # plain attributes; Module.__getattr__ on a missing one costs an exception
        cls = type(module)
        self.type = cls.__name__
        self.forward = cls.forward  # the class's own forward (called with the module)
        self.adaptive = isinstance(module, _ADAPTIVE)
        self.window = window = None if self.adaptive else window_of(module)
        self.kernel = window.describe() if window else ""
        self.in_channels = d.get("in_channels")
        self.out_channels = d.get("out_channels")
        self.is_linear = isinstance(module, nn.Linear)
        self.in_features = d["in_features"] if self.is_linear else None
        self.out_features = d.get("out_features")
        self.is_flatten = isinstance(module, nn.Flatten)
        self.cost = cost_rule(module)
        # (macs, flops, connections, flops_per_input, connections_per_input, per): CostRule's fields in order
        self.coefficients = astuple(self.cost)
        self.rule = _shape_rule(module)
        size = d.get("output_size")  # adaptive pools: an int, or a pair whose None keeps the input's size
        self.output_hw = (size, size) if isinstance(size, int) else tuple(size) if size is not None else None
        # The short paths of _leaf_call: a shape-keeping layer, and a plain conv/pool in floor mode on a 4-D
        # map (its geometry flat, for the inlined output-size formula).
        if self.rule == "same":
            self.path = _SAME
        elif self.rule == "arithmetic" and not window.ceil_mode:
            self.path = _ARITHMETIC
            self.geometry = (
                *window.kernel,
                *window.stride,
                *window.padding,
                *window.dilation,
            )  # kh, kw, sh, …
        else:
            self.path = _GENERAL

    @staticmethod
    def key(module: nn.Module) -> tuple | None:
        """Layers of torch.nn's own classes that agree on every hyper-parameter (their ``__constants__``)
        and on having a bias share a spec (ResNet-152's 364 leaves have 33 kinds). None: not shareable."""
        cls = type(module)
        names = _CONSTANTS.get(cls, False)
        if names is False:  # first sight of this class: torch.nn's own, or not shareable
            names = (
                tuple(getattr(cls, "__constants__", ())) if cls.__module__.startswith("torch.nn.") else None
            )
            _CONSTANTS[cls] = names
        if names is None:
            return None
        d = module.__dict__
        key = (cls, "forward" in d, d["_parameters"].get("bias") is None, *map(d.get, names))
        try:
            hash(key)
        except TypeError:  # an unhashable hyper-parameter (say, a list)
            return None
        return key


_CONSTANTS: dict[type, tuple[str, ...] | None] = {}  # class -> its hyper-parameter names (None: no sharing)
# Specs by key, kept across analyses: a spec is a function of its key alone (class, hyper-parameters, bias)
_SPECS: dict[tuple, _Spec] = {}


def _empty_map(like: torch.Tensor, n: int, c: int, h: int, w: int) -> torch.Tensor:
    """A contiguous N×C×H×W tensor of ``like``'s dtype and device (empty_strided: on meta ~40% cheaper than
    empty())."""
    return torch.empty_strided((n, c, h, w), (c * h * w, h * w, w, 1), dtype=like.dtype, device=like.device)


def _channels_error(name: str, spec: _Spec, shape) -> ShapeError:
    return ShapeError(
        f"layer {name!r} ({spec.type}) expects {spec.in_channels} input channel(s) but got {shape[1]} "
        f"(feature map {tuple(shape[1:])})"
    )


def _leaf_call(self: nn.Module, *args, **kwargs):
    """An instrumented leaf's call: its output (computed by rule, or by its own forward on meta tensors)
    and a row. Two short paths cover most calls (ResNet-152: 362 of 364 leaves): any tensor through a
    shape-keeping layer (the input's shape, field and flattening), and a 4-D map through a plain conv or
    pool (output size by the arithmetic). Everything else takes :func:`_general_call`."""
    tr, name, spec, own, own_forward = self.__dict__[_TRACE]
    tr.current = name
    # nothing inside a leaf is recorded: torch-function dispatch off (else every x.shape below, and
    # every op of the layer, went through the tracer's Python __torch_function__)
    with _no_torch_function():
        x = args[0] if args and isinstance(args[0], _Tensor) else _first_tensor(args)
        path = spec.path
        if x is None or path is _GENERAL:
            return _general_call(self, args, kwargs, x)
        shape = x.shape
        if path is _SAME:
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
        tr.rows.append(
            LayerInfo(tr.count(name), spec.type, spec.kernel, out_shape, params, trainable, out_n * c_macs // per,
                      (out_n * c_flops + in_n * c_flops_in) // per, (out_n * c_conn + in_n * c_conn_in) // per,
                      rf, out_n * out.element_size())
        )  # fmt: skip
    return out


def _general_call(self: nn.Module, args, kwargs, x: torch.Tensor | None):
    """A leaf call off the short paths (torch-function dispatch is already off): checks, the output by rule
    or by the layer's own forward on meta tensors, the row."""
    tr, name, spec, own, own_forward = self.__dict__[_TRACE]
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
    if hw is not None and rule == "arithmetic":  # a pool in ceil mode
        out = _empty_map(x, x.shape[0], spec.out_channels or x.shape[1], *hw)
    elif rule == "linear" and x is not None:  # the check above matched x's last dim to in_features
        out = torch.empty((*x.shape[:-1], spec.out_features), dtype=x.dtype, device=x.device)
    elif rule == "adaptive" and x is not None and x.dim() == 4:
        n, c, h, w = x.shape
        out = _empty_map(x, n, c, spec.output_hw[0] or h, spec.output_hw[1] or w)
    elif own_forward is not None:
        out = own_forward(*args, **kwargs)
    else:
        out = spec.forward(self, *args, **kwargs)
    if not isinstance(out, _Tensor):
        return out

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
    tr.set_rf(out, rf)

    params, trainable = tr.new_params(own)
    out_n = _prod(out_shape[1:])  # per image
    in_n = _prod(in_shape[1:]) if x is not None else out_n
    macs, flops, connections = spec.cost(in_n, out_n)
    kernel = spec.kernel if not spec.adaptive else (window.describe() if window else "")
    tr.rows.append(
        LayerInfo(tr.count(name), spec.type, kernel, list(out_shape[1:]), params, trainable, macs, flops,
                  connections, rf, out_n * out.element_size())
    )  # fmt: skip
    return out


# -- containers -----------------------------------------------------------------------------------------


def _container_call(self: nn.Module, *args, **kwargs):
    """An instrumented container's call: its name on the stack (for functional rows) and, for a block,
    the range of rows its call produced."""
    tr, name, block, forward = self.__dict__[_TRACE]
    tr.stack.append(name)
    start = len(tr.rows)
    out = forward(self, *args, **kwargs)
    tr.stack.pop()
    if block:
        tr.spans[name].append((start, len(tr.rows)))
    return out


_CLASS_NAMES: dict[type, set[str]] = {}


def _class_names(cls: type) -> set[str]:
    """Every attribute name a class has (its own and inherited), once per class."""
    names = _CLASS_NAMES.get(cls)
    if names is None:
        names = _CLASS_NAMES[cls] = set(dir(cls))
    return names


def _parameter_ids(module: nn.Module) -> set[int]:
    """The ids of every parameter under ``module`` (``parameters()`` without its generator machinery)."""
    ids, todo = set(), [module]
    while todo:
        m = todo.pop()
        ids.update(id(p) for p in m.__dict__["_parameters"].values() if p is not None)
        todo.extend(c for c in m.__dict__["_modules"].values() if c is not None)
    return ids


def is_block(module: nn.Module) -> bool:
    """Residual blocks: classes marked ``cnnzoo_block = True`` and torchvision's BasicBlock/Bottleneck."""
    cls = type(module)
    return getattr(cls, "cnnzoo_block", False) or (
        cls.__module__.startswith("torchvision") and cls.__name__ in ("BasicBlock", "Bottleneck")
    )


# -- how a module is instrumented -----------------------------------------------------------------------

_TRACE = "_cnnzoo_trace"  # the instance attribute with what its traced call needs
_TRACED: dict[tuple[type, bool, bool], type | None] = {}  # (class, leaf, direct) -> its traced subclass


def _traced_class(cls: type, leaf: bool, direct: bool) -> type | None:
    """A subclass of ``cls`` whose ``forward`` is the tracer's (as ``torch.nn.utils.parametrize`` swaps a
    module's class for a subclass); with ``direct``, its ``__call__`` too, so a call also skips
    ``Module._call_impl`` (~1.5 µs a call; only for modules without hooks, which would run there). Same
    name, same module path: rows, messages and ``isinstance`` see the original class. None for classes
    that a new subclass could disturb (a metaclass, or an ``__init_subclass__`` that may register it)."""
    key = (cls, leaf, direct)
    traced = _TRACED.get(key, False)
    if traced is False:
        plain = type(cls) is type and all("__init_subclass__" not in vars(k) for k in cls.__mro__[:-1])
        call = _leaf_call if leaf else _container_call
        namespace = {"forward": call, "__module__": cls.__module__, "__qualname__": cls.__qualname__}
        if direct:
            namespace["__call__"] = call
        traced = _TRACED[key] = type(cls.__name__, (cls,), namespace) if plain else None
    return traced


def _instrument(module: nn.Module, info: tuple, leaf: bool, direct: bool) -> None:
    """Give ``module`` its traced call (``direct``: it may skip ``Module._call_impl``, having no hooks)."""
    d = module.__dict__
    d[_TRACE] = info
    traced = _traced_class(type(module), leaf, direct)
    if traced is not None:
        object.__setattr__(module, "__class__", traced)  # not Module.__setattr__: nothing to register
    else:  # an instance-level forward; through a weak reference, or the module and it would form a cycle
        ref, call = weakref.ref(module), _leaf_call if leaf else _container_call
        d["forward"] = lambda *args, **kwargs: call(ref(), *args, **kwargs)


def _has_hooks(d: dict) -> bool:
    """Whether a module (its ``__dict__``) has hooks that ``Module._call_impl`` would run."""
    return bool(
        d["_forward_hooks"] or d["_forward_pre_hooks"] or d["_backward_hooks"] or d["_backward_pre_hooks"]
    )


def _global_hooks() -> bool:
    """Whether hooks for every module are registered (``register_module_forward_hook`` and the like)."""
    from torch.nn.modules import module as m

    return bool(m._global_forward_hooks or m._global_forward_pre_hooks or m._global_backward_hooks
                or m._global_backward_pre_hooks)  # fmt: skip


# -- preparing a model: copy and instrument in one walk -------------------------------------------------

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs",
               "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")  # fmt: skip


class Probe:
    """A model ready to be traced: every module instrumented, the parameters counted; :meth:`run` traces
    it, as often as needed.

    ``copy=True`` (a caller's model): a structural copy on the meta device — new module objects (shared
    ones stay shared), meta parameters and buffers (meta ones reused), no weight data copied; ~20× cheaper
    than ``copy.deepcopy``. The caller's model is never touched. ``copy=False``: the model is the
    analyzer's own (built on meta from a name) and is instrumented in place.

    ``light``: layers whose output shape the tracer knows by rule (plain convs and pools, normalisation…)
    keep references to their original tensors instead of meta copies (ResNet-152: ~900 of ~1,100): the
    tracer never runs them, and nothing is read from or written to them. Should the model's own code use
    such a tensor outside its layer, conv and linear ops still only compute a meta shape from it, while an
    elementwise op fails on the mixed devices: the caller then builds a full copy (``light=False``)."""

    def __init__(self, model: nn.Module, copy: bool = True, light: bool = True) -> None:
        self.tracer = _Tracer()
        self.param_sizes: dict[int, tuple[int, bool]] = {}  # id(parameter) -> (numel, requires_grad)
        self.params = self.trainable_params = 0
        self.blocks: dict[str, nn.Module] = {}  # name -> residual block
        self.block_params: dict[str, tuple[int, int]] = {}  # name -> (params, trainable) under the block
        self._open_blocks: list[set[int]] = []  # ids of the parameters under each block being visited
        self._copy, self._light = copy, light
        self._memo: dict[int, object] = {}  # id(original) -> its copy (modules and tensors)
        self._global_hooks = _global_hooks()
        self.model: nn.Module = self._visit(model, "")
        del self._memo

    def run(self, input_size: tuple[int, int, int]) -> TraceResult:
        """One instrumented meta forward for an input of ``input_size`` (C, H, W). Raises :class:`Collapse`
        or :class:`ShapeError` (naming the layer) for inputs the model cannot take."""
        result = TraceResult(self)
        tracer = self.tracer
        tracer.start(result)
        x = torch.empty((1, *input_size), device="meta")
        tracer.set_rf(x, ReceptiveField())
        try:
            with torch.no_grad(), tracer:
                self.model(x)
        except (Collapse, ShapeError):
            raise
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            size = "×".join(map(str, input_size))
            raise ForwardFailed(
                f"the forward pass fails at layer {tracer.current!r} for input {size}: {first}"
            ) from None
        return result

    def _visit(self, module: nn.Module, name: str) -> nn.Module:
        """Copy (if asked) and instrument ``module`` and, depth first, its children; each module once, named
        by its first path (as ``named_modules()``)."""
        if id(module) in self._memo:
            new = self._memo[id(module)]
            for ids in self._open_blocks:  # a shared module inside a block: its parameters count there too
                ids.update(_parameter_ids(new))  # type: ignore[arg-type]
            return new  # type: ignore[return-value]
        new = self._shallow_copy(module) if self._copy else module
        self._memo[id(module)] = new
        d = new.__dict__  # straight into __dict__: Module.__setattr__'s checks cost more than the work
        d["training"] = False  # = model.eval(), without its own walk (the model is the analyzer's own)
        if self._copy and not (self._light and _shape_rule(module)):
            d["_parameters"] = {k: self._meta(v) for k, v in d["_parameters"].items()}
            d["_buffers"] = {k: self._meta(v) for k, v in d["_buffers"].items()}
        own = self._count_parameters(d["_parameters"])
        direct = not (self._global_hooks or _has_hooks(d))
        children = d["_modules"]
        if not children or all(c is None for c in children.values()):
            self._instrument_leaf(new, name or type(new).__name__, own, direct)
            return new
        block = bool(name) and is_block(new)  # (the root is not a block: it is the whole model)
        if block:
            self._open_blocks.append(set())
        kids = {
            k: c if c is None else self._visit(c, f"{name}.{k}" if name else k) for k, c in children.items()
        }
        if self._copy:
            d["_modules"] = kids
        # Children as plain attributes too: ``self.conv1`` in the model's forward is then found in the
        # instance dict instead of by Module.__getattr__, a Python call (~0.5 µs; ResNet-152 makes 468 a run).
        # Not where the class has the name: there it would shadow the class's attribute.
        class_names = _class_names(type(new))
        for k, c in kids.items():
            if c is not None and k not in class_names and k not in d and k.isidentifier():
                d[k] = c
        if block:
            ids, sizes = self._open_blocks.pop(), self.param_sizes
            self.blocks[name] = new
            self.block_params[name] = (
                sum(sizes[i][0] for i in ids),
                sum(sizes[i][0] for i in ids if sizes[i][1]),
            )
        if name:  # the root container's own call is not a row, nor a name prefix
            own_forward = d.pop("forward", None)  # an instance's own forward, already bound
            forward = type(new).forward if own_forward is None else lambda _, *a, **k: own_forward(*a, **k)
            _instrument(new, (self.tracer, name, block, forward), False, direct)
        return new

    def _instrument_leaf(self, module: nn.Module, name: str, own: tuple, direct: bool) -> None:
        key = _Spec.key(module)
        spec = _SPECS.get(key) if key is not None else None
        if spec is None:
            spec = _Spec(module)
            if key is not None:
                if len(_SPECS) >= 4096:  # bounded: hyper-parameters seen across many analyses
                    _SPECS.clear()
                _SPECS[key] = spec
        own_forward = module.__dict__.pop("forward", None)  # an instance's own forward, already bound
        _instrument(module, (self.tracer, name, spec, own, own_forward), True, direct)

    def _count_parameters(self, parameters: dict) -> tuple[tuple[int, int, bool], ...]:
        """A module's own parameters as (id, numel, requires_grad); the model's and the open blocks' totals
        count each once."""
        sizes, own = self.param_sizes, []
        for p in parameters.values():
            if p is not None:
                if id(p) not in sizes:
                    n, trainable = p.numel(), p.requires_grad
                    sizes[id(p)] = (n, trainable)
                    self.params += n
                    self.trainable_params += n if trainable else 0
                own.append((id(p), *sizes[id(p)]))
                for ids in self._open_blocks:
                    ids.add(id(p))
        return tuple(own)

    def _shallow_copy(self, module: nn.Module) -> nn.Module:
        cls = type(module)
        # A new object with a shallow copy of the old __dict__. Not copy.copy: that goes through
        # __reduce_ex__ and Module.__setstate__ (~5× slower); classes with their own __new__ or slots still
        # take that road.
        if cls.__new__ is object.__new__ and "__slots__" not in _class_names(cls):
            new = object.__new__(cls)
            new.__dict__.update(module.__dict__)
        else:
            import copy

            new = copy.copy(module)
        d = new.__dict__
        # Hooks added to the copy must not reach the original. The tracer adds none, so empty dicts stay
        # shared (5 fewer dicts per module); the other three are only filled along with these two.
        if d["_forward_hooks"] or d["_forward_pre_hooks"]:
            for attr in _HOOK_DICTS:
                if attr in d:  # (not every torch version has all five)
                    d[attr] = type(d[attr])(d[attr])
        return new

    def _meta(self, t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None or t.is_meta:
            return t
        memo = self._memo
        if id(t) not in memo:
            # empty_strided, not empty_like: the latter runs a Python decomposition on meta (~10x slower)
            m = torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device="meta")
            memo[id(t)] = nn.Parameter(m, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else m
        return memo[id(t)]  # type: ignore[return-value]


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
