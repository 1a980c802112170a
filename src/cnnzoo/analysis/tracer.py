"""Runs a model's own ``forward`` once on the meta device and records one row per leaf-module call.

Why it looks the way it does — the analyzer must cost ResNet-152 in a few milliseconds, and on the meta
device nothing is computed, so what remains is Python per module call (ResNet-152: ~520 calls):

- **No hooks.** Forward hooks send every call down ``Module._call_impl``'s slow path (~25 µs of Python
  each). Instead each module of the (meta) copy gets an instance-level ``forward`` wrapper, so calls take
  the hook-free fast path. Leaves record a row; containers push their name (to name residual additions
  like ``layer1.0.add``) and mark the rows they span (blocks).
- **Facts computed once per module, not per call:** the sliding window, its description, the cost rule,
  the channel/feature checks (:class:`_Leaf`).
- **Shapes by arithmetic** for plain convs and pools, and "same shape" for normalisation layers: PyTorch's
  meta kernels for these are Python decompositions (batch norm alone was ~75% of a ResNet-152 run). The
  tests check every shape against a real forward pass.
- **A cheap structural copy**, never ``deepcopy``: new module objects, meta tensors, no weight data.
- **The garbage collector is paused** (by ``summary``, around the whole analysis) while it allocates its ~10k
  small objects: otherwise a full collection over all of torch's live objects may land inside it (seen:
  65 ms runs taking 110–400 ms).

Operations outside leaves (residual additions, ``torch.flatten``, slicing) are seen by a
``TorchFunctionMode``, which is switched off inside leaves, where nothing functional is recorded.
"""

from __future__ import annotations

import gc
import math
from collections import Counter
from contextlib import contextmanager

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import ShapeError
from .arithmetic import conv_output_size
from .rules import Window, cost_rule, functional_cost, window_of
from .schema import LayerInfo, ReceptiveField

_no_torch_function = torch._C.DisableTorchFunction

__all__ = ["Collapse", "ForwardFailed", "TraceResult", "meta_copy", "run"]


class Collapse(Exception):
    """Raised before a window runs over an input it no longer fits."""

    def __init__(self, layer: str, kind: str, window: Window, in_hw: tuple[int, int]) -> None:
        super().__init__(layer)
        self.layer, self.kind, self.window, self.in_hw = layer, kind, window, in_hw


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            if isinstance(o, torch.Tensor):
                yield o


def _first_tensor(args) -> torch.Tensor | None:
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    return next((t for a in args for t in _tensors(a)), None)


def _hw_after(window: Window, hw) -> tuple[int, int]:
    """(H, W) after a window; < 1 means the map collapsed."""
    k, s, p, d = window.kernel, window.stride, window.padding, window.dilation
    if window.ceil_mode:
        c = window.ceil_mode
        return conv_output_size(hw[0], k[0], s[0], p[0], d[0], c), conv_output_size(
            hw[1], k[1], s[1], p[1], d[1], c
        )
    # floor mode with explicit padding, the hot path: conv_output_size's formula, inlined
    return (hw[0] + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1, (
        hw[1] + 2 * p[1] - d[1] * (k[1] - 1) - 1
    ) // s[1] + 1


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

# Normalisation layers keep their input's shape, but their meta kernels run Python decompositions.
_SHAPE_KEEPING = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LocalResponseNorm,
    nn.GroupNorm,
    nn.LayerNorm,
)
# Plain convs and pools: their output shape is the (tested) arithmetic's. Only these exact classes: a
# subclass may have its own forward, which then runs for real.
_SHAPE_ARITHMETIC = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
# Activations, dropout (the analysis runs in eval mode) and Identity: same shape; exact classes only.
_ELEMENTWISE = {nn.ReLU, nn.ReLU6, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardtanh,
                nn.Hardswish, nn.Hardsigmoid, nn.Softmax, nn.LogSoftmax, nn.Dropout, nn.Dropout2d, nn.Identity}  # fmt: skip


def _shape_rule(module: nn.Module) -> str | None:
    """How the analyzer knows this leaf's output shape without running it (None: it runs it):
    "arithmetic" (plain conv/pool), "same" (normalisation, activations), "linear" (last dim ->
    out_features), "adaptive" (adaptive pools: the requested size). PyTorch's meta kernels for these are
    Python decompositions: a meta Linear or adaptive pool alone costs ~2 ms."""
    d = module.__dict__
    if "forward" in d:
        return None
    cls = type(module)
    if isinstance(module, _SHAPE_KEEPING) or cls in _ELEMENTWISE:
        return "same"
    if cls in _SHAPE_ARITHMETIC and not d.get("return_indices") and not isinstance(d["padding"], str):
        return "arithmetic"  # not 'same' padding: it may pad unevenly, and the real kernel knows how
    if cls is nn.Linear:
        return "linear"
    if cls in _ADAPTIVE and not d.get("return_indices"):
        return "adaptive"
    return None


# Elementwise ops outside leaves (residual additions): when every operand has the same shape, the result
# has it too, and PyTorch's meta kernels (Python broadcast checks, ~100 µs a call) can be skipped.
_INPLACE_BINARY = {"add_", "__iadd__", "sub_", "__isub__", "mul_", "__imul__"}
_BINARY = {"add", "__add__", "__radd__", "sub", "__sub__", "mul", "__mul__", "__rmul__"}


class TraceResult:
    """What one run saw: the rows, the rows each block spans, and the model's parameter totals."""

    def __init__(self) -> None:
        self.rows: list[LayerInfo] = []
        # block name -> (the block, [(first row, end row) of each of its calls])
        self.spans: dict[str, tuple[nn.Module, list[tuple[int, int]]]] = {}
        self.params = 0
        self.trainable_params = 0
        self.param_sizes: dict[int, tuple[int, bool]] = {}  # id(parameter) -> (numel, requires_grad)


class _Tracer(TorchFunctionMode):
    def __init__(self, result: TraceResult) -> None:
        super().__init__()
        self.rows = result.rows
        self.spans = result.spans
        self.param_sizes = result.param_sizes
        self.rf: dict[int, ReceptiveField] = {}
        self.flat_from: dict[int, tuple[ReceptiveField, tuple[int, int]]] = {}  # flattened maps' geometry
        self.keep: list[torch.Tensor] = []  # holds traced tensors so their ids stay unique
        self.stack: list[str] = []
        self.leaf_depth = 0
        self.seen_params: set[int] = set()
        self.calls: Counter[str] = Counter()
        self.current = ""

    def set_rf(self, t: torch.Tensor, rf: ReceptiveField | None) -> None:
        if rf is not None:
            self.rf[id(t)] = rf
            self.keep.append(t)

    # -- functional ops outside leaf modules (inside leaves torch-function dispatch is off)
    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = self._same_shape_binary(func, args, kwargs)
        if out is None:
            out = func(*args, **(kwargs or {}))
        if self.leaf_depth == 0 and isinstance(out, torch.Tensor):
            self._functional(getattr(func, "__name__", ""), args, out)
        return out

    @staticmethod
    def _same_shape_binary(func, args, kwargs) -> torch.Tensor | None:
        if len(args) != 2 or (kwargs and set(kwargs) != {"alpha"}):
            return None
        a, b = args
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.is_meta and b.is_meta):
            return None
        if a.shape != b.shape or a.dtype != b.dtype:
            return None
        op = getattr(func, "__name__", "")
        if op in _INPLACE_BINARY:
            return a
        if op in _BINARY:
            return torch.empty_strided(a.size(), a.stride(), dtype=a.dtype, device=a.device)
        return None

    def _functional(self, op: str, args, out: torch.Tensor) -> None:
        inputs = [t for a in args for t in _tensors(a)]
        if not inputs or op in ("__get__", "size", "dim"):
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
            parent = self.stack[-1] if self.stack else ""
            base = f"{parent}.{op.strip('_').rstrip('_')}" if parent else op.strip("_")
            self.calls[base] += 1
            name = base if self.calls[base] == 1 else f"{base}#{self.calls[base]}"
            self.rows.append(
                LayerInfo(name, op.strip("_"), "", list(out.shape[1:]), 0, 0, cost.macs, cost.flops,
                          cost.connections, rf, math.prod(out.shape[1:]) * out.element_size())
            )  # fmt: skip


class _Spec:
    """What a leaf's rows need to know about it that does not change between calls: its window and
    its description, the shape rule, the cost rule, the checks."""

    def __init__(self, module: nn.Module) -> None:
        self.type = type(module).__name__
        self.adaptive = isinstance(module, _ADAPTIVE)
        self.window = None if self.adaptive else window_of(module)
        self.kernel = self.window.describe() if self.window else ""
        d = module.__dict__  # plain attributes; Module.__getattr__ on a missing one costs an exception
        self.in_channels = d.get("in_channels")
        self.out_channels = d.get("out_channels")
        self.is_linear = isinstance(module, nn.Linear)
        self.in_features = d["in_features"] if self.is_linear else None
        self.is_flatten = isinstance(module, nn.Flatten)
        self.cost = cost_rule(module)
        rule = _shape_rule(module)
        self.same_shape, self.arithmetic = rule == "same", rule == "arithmetic"
        self.linear_shape, self.adaptive_shape = rule == "linear", rule == "adaptive"
        self.out_features = d.get("out_features")
        size = d.get("output_size")  # adaptive pools: an int, or a pair whose None keeps the input's size
        self.output_hw = (size, size) if isinstance(size, int) else tuple(size) if size is not None else None

    @staticmethod
    def key(module: nn.Module) -> tuple | None:
        """Layers of torch.nn's own classes that agree on every hyper-parameter (their ``__constants__``)
        share a spec: ResNet-152's 364 leaves have 33 distinct ones. None: not shareable."""
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


class _Leaf:
    """One leaf module's instrumented ``forward``: a row per call."""

    def __init__(self, tracer: _Tracer, name: str, module: nn.Module, spec: _Spec) -> None:
        self.__dict__.update(
            spec.__dict__
        )  # the spec's fields as this object's own (the hot path reads them)
        self.tracer, self.name, self.module = tracer, name, module
        self.real_forward = module.forward  # the instance's own forward if it has one, else the class's
        self.calls = 0

    def forward(self, *args, **kwargs):
        tr = self.tracer
        tr.current = self.name
        tr.leaf_depth += 1
        try:
            # nothing inside a leaf is recorded: torch-function dispatch off (else every x.shape below, and
            # every op of the layer, went through the tracer's Python __torch_function__)
            with _no_torch_function():
                x = args[0] if args and isinstance(args[0], torch.Tensor) else _first_tensor(args)
                hw, window = self._check(x) if x is not None else (None, self.window)
                if hw is not None and self.arithmetic:  # the check computed the output size
                    n, c, (h, w) = x.shape[0], self.out_channels or x.shape[1], hw
                    # empty_strided with contiguous strides: ~40% cheaper than empty() on meta
                    out = torch.empty_strided(
                        (n, c, h, w), (c * h * w, h * w, w, 1), dtype=x.dtype, device=x.device
                    )
                elif self.same_shape and x is not None:
                    out = x.detach()  # a new tensor of the same shape (a view: ~4× cheaper than empty)
                elif self.linear_shape and x is not None:  # _check has matched x's last dim to in_features
                    out = torch.empty((*x.shape[:-1], self.out_features), dtype=x.dtype, device=x.device)
                elif self.adaptive_shape and x is not None and x.dim() == 4:
                    n, c, h, w = x.shape
                    h, w = self.output_hw[0] or h, self.output_hw[1] or w
                    out = torch.empty_strided(
                        (n, c, h, w), (c * h * w, h * w, w, 1), dtype=x.dtype, device=x.device
                    )
                else:
                    out = self.real_forward(*args, **kwargs)
                if isinstance(out, torch.Tensor):
                    self._row(x, out, window)
        finally:
            tr.leaf_depth -= 1
        return out

    def _check(self, x: torch.Tensor):
        """The usual shape failures as messages that name the layer, raised before anything runs.
        Returns the output (H, W) of a windowed layer on a 4-D input (else None), and the window."""
        shape = x.shape
        dim = len(shape)
        if self.in_channels is not None and dim == 4 and shape[1] != self.in_channels:
            raise ShapeError(
                f"layer {self.name!r} ({self.type}) expects {self.in_channels} input channel(s) but got "
                f"{shape[1]} (feature map {tuple(shape[1:])})"
            )
        if self.in_features is not None and shape[-1] != self.in_features:
            raise ShapeError(
                f"layer {self.name!r} (Linear) expects {self.in_features} input features but got "
                f"{shape[-1]}: the classifier head is built for one input size"
            )
        if dim != 4:
            return None, self.window
        if self.adaptive:
            return None, window_of(self.module, (shape[2], shape[3]))
        if self.window is None:
            return None, None
        hw = _hw_after(self.window, shape[2:])
        if hw[0] < 1 or hw[1] < 1:
            raise Collapse(self.name, self.type, self.window, (shape[2], shape[3]))
        return hw, self.window

    def _row(self, x: torch.Tensor | None, out: torch.Tensor, window: Window | None) -> None:
        tr = self.tracer
        out_shape = out.shape
        in_shape = x.shape if x is not None else out_shape
        rf_in = tr.rf.get(id(x)) if x is not None else None
        rf = rf_in
        if rf_in is not None and window is not None and len(in_shape) == 4:
            rf = rf_in.through(window)
        elif self.is_linear and x is not None and id(x) in tr.flat_from:
            # A full layer over a flattened H×W map is a conv whose kernel is the whole map (VGG's FC6 = 7×7).
            rf0, hw = tr.flat_from[id(x)]
            rf = rf0.through(Window(hw, (1, 1), (0, 0)))
        if self.is_flatten and rf_in is not None and len(in_shape) == 4:
            tr.flat_from[id(out)] = (rf_in, tuple(in_shape[-2:]))
        elif (
            self.same_shape and x is not None and id(x) in tr.flat_from
        ):  # e.g. Dropout between flatten and FC
            tr.flat_from[id(out)] = tr.flat_from[id(x)]
        tr.set_rf(out, rf)

        self.calls += 1
        params = trainable = 0
        if self.calls == 1:  # parameters count on a module's first call, shared ones once in all
            for p in self.module.__dict__["_parameters"].values():
                if p is not None and id(p) not in tr.seen_params:
                    tr.seen_params.add(id(p))
                    n, requires_grad = tr.param_sizes[id(p)]
                    params += n
                    trainable += n if requires_grad else 0
        out_n = math.prod(out_shape[1:])  # per image
        in_n = math.prod(in_shape[1:]) if x is not None else out_n
        macs, flops, connections = self.cost(in_n, out_n)
        kernel = self.kernel if not self.adaptive else (window.describe() if window else "")
        tr.rows.append(
            LayerInfo(self.name if self.calls == 1 else f"{self.name}#{self.calls}", self.type, kernel,
                      list(out_shape[1:]), params, trainable, macs, flops, connections, rf,
                      out_n * out.element_size())
        )  # fmt: skip


def _container_forward(tracer: _Tracer, name: str, inner, is_block: bool):
    """A container's forward, wrapped: its name on the stack (for functional rows) and, for a block, the
    range of rows its call produced."""
    stack, rows = tracer.stack, tracer.rows

    def forward(*args, **kwargs):
        stack.append(name)
        start = len(rows)
        out = inner(*args, **kwargs)
        stack.pop()
        if is_block:
            tracer.spans[name][1].append((start, len(rows)))
        return out

    return forward


def is_block(module: nn.Module) -> bool:
    """Residual blocks: classes marked ``cnnzoo_block = True`` and torchvision's BasicBlock/Bottleneck."""
    cls = type(module)
    return getattr(cls, "cnnzoo_block", False) or (
        cls.__module__.startswith("torchvision") and cls.__name__ in ("BasicBlock", "Bottleneck")
    )


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


class ForwardFailed(ShapeError):
    """The model's own forward raised (a shape PyTorch rejects, or weights used outside their layer)."""


def _modules(model: nn.Module):
    """``named_modules()`` (each module once, pre-order) without its nested generators."""
    seen, todo = set(), [("", model)]
    while todo:
        name, m = todo.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        yield name, m
        children = [
            (f"{name}.{k}" if name else k, c) for k, c in m.__dict__["_modules"].items() if c is not None
        ]
        todo.extend(reversed(children))


def run(model: nn.Module, input_size: tuple[int, int, int]) -> TraceResult:
    """One instrumented meta forward of ``model`` (a meta copy this call may patch; it restores it).
    Raises :class:`Collapse` or :class:`ShapeError` (naming the layer) for inputs the model cannot take."""
    result = TraceResult()
    tracer = _Tracer(result)
    patched: list[tuple[nn.Module, object, bool]] = []  # (module, its own forward or None, training)
    sizes = result.param_sizes
    specs: dict[tuple, _Spec] = {}
    try:
        for name, m in _modules(model):
            d = m.__dict__
            patched.append((m, d.get("forward"), d["training"]))
            d["training"] = False  # = model.eval(), without the recursive walk
            for p in d["_parameters"].values():
                if p is not None and id(p) not in sizes:
                    n, trainable = p.numel(), p.requires_grad
                    sizes[id(p)] = (n, trainable)
                    result.params += n
                    result.trainable_params += n if trainable else 0
            if not any(c is not None for c in d["_modules"].values()):
                key = _Spec.key(m)
                spec = specs.get(key) if key is not None else None
                if spec is None:
                    spec = _Spec(m)
                    if key is not None:
                        specs[key] = spec
                d["forward"] = _Leaf(tracer, name or type(m).__name__, m, spec).forward
            elif name:  # the root container's own call is not a row, nor a name prefix
                block = is_block(m)
                if block:
                    result.spans[name] = (m, [])
                d["forward"] = _container_forward(tracer, name, m.forward, block)
        x = torch.empty((1, *input_size), device="meta")
        tracer.set_rf(x, ReceptiveField())
        with torch.no_grad(), tracer:
            model(x)
    except (Collapse, ShapeError):
        raise
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        size = "×".join(map(str, input_size))
        raise ForwardFailed(
            f"the forward pass fails at layer {tracer.current!r} for input {size}: {first}"
        ) from None
    finally:
        for m, own, training in patched:
            d = m.__dict__
            if own is None:
                d.pop("forward", None)
            else:
                d["forward"] = own
            d["training"] = training
    return result


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs",
               "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")  # fmt: skip


def meta_copy(model: nn.Module, light: bool = True) -> nn.Module:
    """A structural copy of ``model`` on the meta device: new module objects (shared ones stay shared), meta
    parameters and buffers (meta ones reused), no weight data copied; ~20× cheaper than ``copy.deepcopy``.

    ``light``: the layers whose output shape the tracer knows by rule (plain convs and pools, normalisation)
    keep references to their original tensors instead of meta copies (ResNet-152: ~900 of ~1,100): the
    tracer never runs them, and nothing is read from or written to them. Should the model's own code use
    such a tensor outside its layer, conv and linear ops still only compute a meta shape from it, while an
    elementwise op fails on the mixed devices: the caller then traces a full copy (``light=False``)."""
    return _meta_copy(model, {}, light)


def _meta_copy(model: nn.Module, memo: dict[int, object], light: bool) -> nn.Module:
    if id(model) in memo:
        return memo[id(model)]  # type: ignore[return-value]
    cls = type(model)
    # A new object with a shallow copy of the old __dict__. Not copy.copy: that goes through __reduce_ex__
    # and Module.__setstate__ (~5× slower); classes with their own __new__ or slots still take that road.
    if cls.__new__ is object.__new__ and not hasattr(cls, "__slots__"):
        new = object.__new__(cls)
        new.__dict__.update(model.__dict__)
    else:
        import copy

        new = copy.copy(model)
    memo[id(model)] = new

    def meta(t):
        if t is None or t.is_meta:
            return t
        if id(t) not in memo:
            # empty_strided, not empty_like: the latter runs a Python decomposition on meta (~10x slower)
            m = torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device="meta")
            memo[id(t)] = nn.Parameter(m, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else m
        return memo[id(t)]

    # straight into __dict__: Module.__setattr__'s checks cost more than the copy itself
    d = new.__dict__
    if not (light and _shape_rule(model)):
        d["_parameters"] = {k: meta(v) for k, v in model._parameters.items()}
        d["_buffers"] = {k: meta(v) for k, v in model._buffers.items()}
    d["_modules"] = {k: None if v is None else _meta_copy(v, memo, light) for k, v in model._modules.items()}
    for attr in _HOOK_DICTS:  # hooks added to the copy must not reach the original (the tracer adds none,
        if d.get(attr):  # so empty dicts stay shared: 5 fewer dicts per module)
            d[attr] = type(d[attr])(d[attr])
    return new
