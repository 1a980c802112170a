"""Prepares a model for the analyzer: a meta copy of it, every module instrumented, in one walk.

Why it looks the way it does — the analyzer must cost ResNet-152 in a few milliseconds, and on the meta
device nothing is computed, so what remains is Python per module (ResNet-152: 423 modules, ~520 calls):

- **One walk to prepare.** :class:`Probe` copies the model to meta (or takes a model the analyzer built on
  meta itself) and instruments each module in the same walk. The copy is the analyzer's own: nothing is
  restored afterwards, and it can run again (the smallest-input search runs it a dozen times).
- **A cheap structural copy**, never ``deepcopy``: new module objects by their ``__dict__``, meta tensors, no
  weight data. Layers whose shape is known by rule keep their original tensors (nothing reads them).
- **No hooks, no wrappers per module.** Each module's class is swapped for a cached subclass whose
  ``forward`` and ``__call__`` are the recorder's (what ``torch.nn.utils.parametrize`` does to a module), so
  a call skips ``Module._call_impl`` too; what it needs sits in one instance attribute. Forward hooks would
  send every call down ``_call_impl``'s slow path (~25 µs of Python each), per-module closures cost time
  to build and, holding their module, form reference cycles that only a full garbage collection frees
  (~250 ms over torch's live objects, inside whatever runs next).
- **Children as plain attributes of the copy**: ``self.conv1`` in the model's forward is then found in the
  instance dict, not by ``Module.__getattr__`` (a Python call; ResNet-152 makes 468 a run).
- **Facts computed once per layer kind, not per call** (:mod:`cnnzoo.analysis.specs`).

The torch internals this relies on are in :mod:`cnnzoo._torch_compat`; what runs during the forward is in
:mod:`cnnzoo.analysis.recorder`.
"""

from __future__ import annotations

import copy
import weakref

import torch
from torch import nn

from .._torch_compat import (
    BUFFERS,
    FORWARD_HOOK_DICTS,
    MODULES,
    PARAMETERS,
    DisableTorchDispatch,
    global_hooks,
    has_forward_hooks,
    has_hooks,
    set_class,
)
from ..errors import ShapeError
from .dispatch import OpCounter
from .recorder import (
    TRACE,
    Collapse,
    ForwardFailed,
    Recorder,
    TraceResult,
    container_call,
    leaf_call,
    per_position_call,
)
from .schema import ReceptiveField
from .specs import leaf_spec, shape_rule

__all__ = ["Probe", "is_block", "is_per_position"]


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
        ids.update(id(p) for p in m.__dict__[PARAMETERS].values() if p is not None)
        todo.extend(c for c in m.__dict__[MODULES].values() if c is not None)
    return ids


def is_block(module: nn.Module) -> bool:
    """Residual blocks: classes marked ``cnnzoo_block = True`` and torchvision's BasicBlock/Bottleneck."""
    cls = type(module)
    return getattr(cls, "cnnzoo_block", False) or (
        cls.__module__.startswith("torchvision") and cls.__name__ in ("BasicBlock", "Bottleneck")
    )


def is_per_position(module: nn.Module) -> bool:
    """Containers that run a per-sample layer at every position of a map (``cnnzoo_per_position = True``,
    as ``cnnzoo.convert.PerPosition``): see :func:`~cnnzoo.analysis.recorder.per_position_call`."""
    return getattr(type(module), "cnnzoo_per_position", False)


# -- how a module is instrumented -----------------------------------------------------------------------

_TRACED: dict[tuple, type | None] = {}  # (class, call, direct) -> its traced subclass


def _traced_class(cls: type, call, direct: bool) -> type | None:
    """A subclass of ``cls`` whose ``forward`` is the tracer's (as ``torch.nn.utils.parametrize`` swaps a
    module's class for a subclass); with ``direct``, its ``__call__`` too, so a call also skips
    ``Module._call_impl`` (~1.5 µs a call; only for modules without hooks, which would run there). Same
    name, same module path: rows, messages and ``isinstance`` see the original class. None for classes
    that a new subclass could disturb (a metaclass, or an ``__init_subclass__`` that may register it)."""
    key = (cls, call, direct)
    traced = _TRACED.get(key, False)
    if traced is False:
        plain = type(cls) is type and all("__init_subclass__" not in vars(k) for k in cls.__mro__[:-1])
        namespace = {"forward": call, "__module__": cls.__module__, "__qualname__": cls.__qualname__}
        if direct:
            namespace["__call__"] = call
        traced = _TRACED[key] = type(cls.__name__, (cls,), namespace) if plain else None
    return traced


def _instrument(module: nn.Module, info: tuple, call, direct: bool) -> None:
    """Give ``module`` its traced ``call`` (``direct``: it may skip ``Module._call_impl``, having no hooks)."""
    d = module.__dict__
    d[TRACE] = info
    traced = _traced_class(type(module), call, direct)
    if traced is not None:
        set_class(module, traced)
    else:  # an instance-level forward; through a weak reference, or the module and it would form a cycle
        ref = weakref.ref(module)
        d["forward"] = lambda *args, **kwargs: call(ref(), *args, **kwargs)


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
        self.tracer = Recorder()
        self.param_sizes: dict[int, tuple[int, bool]] = {}  # id(parameter) -> (numel, requires_grad)
        self.params = self.trainable_params = 0
        self.blocks: dict[str, nn.Module] = {}  # name -> residual block
        self.block_params: dict[str, tuple[int, int]] = {}  # name -> (params, trainable) under the block
        self._open_blocks: list[set[int]] = []  # ids of the parameters under each block being visited
        self._copy, self._light = copy, light
        self._memo: dict[int, object] = {}  # id(original) -> its copy (modules and tensors)
        self._global_hooks = global_hooks()
        self.model: nn.Module = self._visit(model, "")
        del self._memo
        self.ops = OpCounter(self.param_sizes)
        self.tracer.attach(self.ops, self.param_sizes)

    def run(
        self,
        input_size: tuple[int, ...],
        allow_uncounted: bool = False,
        device: str = "meta",
        more: tuple = (),
    ) -> TraceResult:
        """One instrumented meta forward for an input of ``input_size`` (C, H, W). Raises :class:`Collapse`
        or :class:`ShapeError` (naming the layer) for inputs the model cannot take. ``more``: the model's
        further inputs, ``(size, dtype)`` each, the first of them ``input_size``'s dtype (none: float)."""
        result = TraceResult(self)
        tracer = self.tracer
        tracer.start(result)
        self.ops.strict = not allow_uncounted
        self.ops.whole = tuple(input_size[1:3]) if len(input_size) >= 3 else (1, 1)
        with DisableTorchDispatch():
            if more:
                xs = [_tensor(size, dtype, device) for size, dtype in more]
            else:
                x = (
                    torch.empty((1, *input_size), device="meta")
                    if device == "meta"
                    else torch.rand((1, *input_size))
                )
                xs = [x]
        if len(input_size) == 3 and xs[0].is_floating_point():  # receptive fields are for images (C×H×W)
            tracer.set_rf(xs[0], ReceptiveField())
        try:
            with torch.no_grad(), tracer, self.ops:
                self.model(*xs)
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
        if self._copy and not (self._light and shape_rule(module)):
            d[PARAMETERS] = {k: self._meta(v) for k, v in d[PARAMETERS].items()}
            d[BUFFERS] = {k: self._meta(v) for k, v in d[BUFFERS].items()}
        own = self._count_parameters(d[PARAMETERS])
        direct = not (self._global_hooks or has_hooks(d))
        children = d[MODULES]
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
            d[MODULES] = kids
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
            call = per_position_call if is_per_position(new) else container_call
            _instrument(new, (self.tracer, name, block, forward), call, direct)
        return new

    def _instrument_leaf(self, module: nn.Module, name: str, own: tuple, direct: bool) -> None:
        spec = leaf_spec(module)
        own_forward = module.__dict__.pop("forward", None)  # an instance's own forward, already bound
        _instrument(module, (self.tracer, name, spec, own, own_forward), leaf_call, direct)

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
            new = copy.copy(module)
        d = new.__dict__
        # Hooks added to the copy must not reach the original. The analyzer adds none, so empty dicts stay
        # shared (5 fewer dicts per module).
        if has_forward_hooks(d):
            for attr in FORWARD_HOOK_DICTS:
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


def _tensor(size: tuple[int, ...], dtype: torch.dtype, device: str) -> torch.Tensor:
    """One input of a batch of one: empty on the meta device; on the CPU random (0 or 1 for integers,
    a valid token index for any embedding)."""
    if device == "meta":
        return torch.empty((1, *size), dtype=dtype, device="meta")
    if dtype.is_floating_point:
        return torch.rand((1, *size), dtype=dtype)
    return torch.randint(0, 2, (1, *size), dtype=dtype)
