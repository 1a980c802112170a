"""The layer analyzer: per-layer shapes, parameters, MACs/FLOPs, connections and receptive fields.

``summary(model_or_name, input_size=(C, H, W))`` runs the model's own ``forward`` once on PyTorch's *meta*
device: tensors carry shapes but no data, so nothing is computed and the cost does not grow with the
input or the model (VGG-16 at 1024×1024 takes as long as at 224). A model already built on the CPU or a
GPU is analysed through a meta copy (its weights are neither copied nor touched).

How it sees the network:
- forward hooks on every *leaf* module give one row per call (a module called twice, like torchvision's
  ``BasicBlock.relu``, gives two rows; its parameters are counted once);
- a ``TorchFunctionMode`` sees the operations that run outside leaf modules — residual additions,
  ``torch.flatten``, slicing — so they are costed and the receptive field follows every path;
- receptive fields are tracked per tensor (size, jump = effective stride, start = centre of the first
  unit, in input pixels); where paths merge (a residual add) the larger field wins.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import Counter
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import ShapeError
from ..registry import create_model, get_model_info
from .arithmetic import output_shape_2d
from .rules import CONVENTIONS, Window, functional_cost, module_cost, window_of

__all__ = ["summary", "trace", "Summary", "LayerInfo", "BlockInfo", "ReceptiveField", "parse_input_size"]


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one unit of a feature map, per spatial dimension (H, W), in input pixels."""

    size: tuple[float, float] = (1, 1)
    jump: tuple[float, float] = (1, 1)
    start: tuple[float, float] = (0.5, 0.5)  # centre of the first unit's field; pixel centres are at i + 0.5

    def through(self, w: Window) -> ReceptiveField:
        size, jump, start = [], [], []
        for i in range(2):
            eff = w.dilation[i] * (w.kernel[i] - 1) + 1
            size.append(self.size[i] + (eff - 1) * self.jump[i])
            jump.append(self.jump[i] * w.stride[i])
            start.append(self.start[i] + ((eff - 1) / 2 - w.padding[i]) * self.jump[i])
        return ReceptiveField(tuple(size), tuple(jump), tuple(start))

    def merge(self, other: ReceptiveField | None) -> ReceptiveField:
        return self if other is None or self.size >= other.size else other

    def to_dict(self) -> dict:
        def one(v):
            v = tuple(int(x) if float(x).is_integer() else x for x in v)
            return v[0] if v[0] == v[1] else list(v)

        return {"size": one(self.size), "jump": one(self.jump), "start": one(self.start)}


@dataclass
class LayerInfo:
    name: str
    type: str
    kernel: str  # e.g. "3×3 s2 p1"; "" for layers without a window
    output_shape: list[int]  # without the batch dimension
    params: int  # all parameters, fixed ones included (counted on the module's first call only)
    trainable_params: int
    macs: int
    flops: int
    connections: int
    receptive_field: ReceptiveField | None
    activation_bytes: int

    def to_dict(self) -> dict:
        d = asdict(self)
        d["receptive_field"] = self.receptive_field.to_dict() if self.receptive_field else None
        return d


@dataclass
class BlockInfo:
    name: str
    type: str
    layers: list[str]  # first and last row of the block
    output_shape: list[int]
    params: int
    trainable_params: int
    macs: int
    flops: int
    connections: int
    receptive_field: ReceptiveField | None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["receptive_field"] = self.receptive_field.to_dict() if self.receptive_field else None
        return d


@dataclass
class Summary:
    model: str
    input: tuple[int, int, int]
    layers: list[LayerInfo]
    blocks: list[BlockInfo] = field(default_factory=list)
    total: dict = field(default_factory=dict)
    conventions: str = CONVENTIONS

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "input": list(self.input),
            "conventions": self.conventions,
            "layers": [row.to_dict() for row in self.layers],
            "blocks": [b.to_dict() for b in self.blocks],
            "total": dict(self.total),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def layer(self, name: str) -> LayerInfo:
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(f"no layer {name!r} in the summary of {self.model}")

    def __rich__(self):
        from .render import rich_table

        return rich_table(self)

    def __str__(self) -> str:
        from .render import to_text

        return to_text(self)


# ---------------------------------------------------------------------------------------------- tracing


class _Collapse(Exception):
    """Raised from a pre-hook when a window no longer fits its input."""

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


_LAYOUT_FLATTEN = {"flatten", "view", "reshape"}


class _Tracer(TorchFunctionMode):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rows: list[LayerInfo] = []
        self.rf: dict[int, ReceptiveField] = {}
        self.flat_from: dict[int, tuple[ReceptiveField, tuple[int, int]]] = {}  # flattened maps' geometry
        self.keep: list[torch.Tensor] = []  # holds traced tensors so their ids stay unique
        self.stack: list[str] = []
        self.leaf_depth = 0
        self.seen_params: set[int] = set()
        self.calls: Counter[str] = Counter()
        self.current = ""
        # Inside a leaf module nothing functional is recorded, so torch-function interception is switched off
        # from its pre-hook to its post-hook: otherwise every ``x.shape`` and ``numel()`` of the bookkeeping
        # (and every op of the leaf) went through ``__torch_function__`` (ResNet-152: ~7,600 calls).
        self.quiet: torch._C.DisableTorchFunction | None = None

    def _unquiet(self) -> None:
        if self.quiet is not None:
            self.quiet.__exit__(None, None, None)
            self.quiet = None

    # -- receptive-field bookkeeping
    def _rf_of(self, t: torch.Tensor) -> ReceptiveField | None:
        return self.rf.get(id(t))

    def _set_rf(self, t: torch.Tensor, rf: ReceptiveField | None) -> None:
        if rf is not None:
            self.rf[id(t)] = rf
            self.keep.append(t)

    # -- functional ops outside leaf modules
    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.leaf_depth == 0 and isinstance(out, torch.Tensor):
            self._functional(getattr(func, "__name__", ""), args, out)
        return out

    def _functional(self, op: str, args, out: torch.Tensor) -> None:
        inputs = [t for a in args for t in _tensors(a)]
        if not inputs or op in ("__get__", "size", "dim"):
            return
        rfs = [self._rf_of(t) for t in inputs]
        rf = None
        for r in rfs:
            rf = r if rf is None else rf.merge(r)
        first = inputs[0]
        if op in _LAYOUT_FLATTEN and first.dim() == 4 and out.dim() == 2 and rf is not None:
            self.flat_from[id(out)] = (rf, tuple(first.shape[-2:]))
        elif op == "__getitem__" and rf is not None and first.dim() == 4 and isinstance(args[1], tuple):
            rf = _sliced(rf, args[1])
        self._set_rf(out, rf)
        cost = functional_cost(op, tuple(out.shape))
        if cost.flops:
            parent = self.stack[-1] if self.stack else ""
            base = f"{parent}.{op.strip('_').rstrip('_')}" if parent else op.strip("_")
            self.calls[base] += 1
            name = base if self.calls[base] == 1 else f"{base}#{self.calls[base]}"
            self.rows.append(
                LayerInfo(name, op.strip("_"), "", list(out.shape[1:]), 0, 0, cost.macs, cost.flops,
                          cost.connections, rf, out[0].numel() * out.element_size())
            )  # fmt: skip

    # -- module hooks
    def pre_hook(self, name: str, leaf: bool):
        def hook(module, args):
            self.stack.append(name)
            if leaf:
                self.leaf_depth += 1
                self.current = name
                self.quiet = torch._C.DisableTorchFunction()
                self.quiet.__enter__()
                _check_input(name, module, args)

        return hook

    def post_hook(self, name: str, leaf: bool):
        def hook(module, args, out):
            self.stack.pop()
            if not leaf:
                return
            self.leaf_depth -= 1
            try:
                x = next(_tensors(args), None)
                if isinstance(out, torch.Tensor):
                    self._leaf_row(name, module, x, out)
            finally:
                self._unquiet()

        return hook

    def _leaf_row(self, name: str, module: nn.Module, x: torch.Tensor | None, out: torch.Tensor) -> None:
        in_shape = tuple(x.shape) if x is not None else tuple(out.shape)
        rf_in = self._rf_of(x) if x is not None else None
        in_hw = tuple(in_shape[-2:]) if len(in_shape) == 4 else None
        window = window_of(module, in_hw)
        rf = rf_in
        if rf_in is not None and window is not None and len(in_shape) == 4:
            rf = rf_in.through(window)
        elif isinstance(module, nn.Linear) and x is not None and id(x) in self.flat_from:
            # A full layer over a flattened H×W map is a conv whose kernel is the whole map (VGG's FC6 = 7×7).
            rf0, hw = self.flat_from[id(x)]
            rf = rf0.through(Window(hw, (1, 1), (0, 0)))
        if isinstance(module, nn.Flatten) and rf_in is not None and len(in_shape) == 4:
            self.flat_from[id(out)] = (rf_in, in_hw)
        self._set_rf(out, rf)

        self.calls[name] += 1
        row_name = name if self.calls[name] == 1 else f"{name}#{self.calls[name]}"
        params = trainable = 0
        for p in module._parameters.values():  # = parameters(recurse=False), without its generator machinery
            if p is not None and id(p) not in self.seen_params:
                self.seen_params.add(id(p))
                params += p.numel()
                trainable += p.numel() if p.requires_grad else 0
        cost = module_cost(module, in_shape, tuple(out.shape))
        self.rows.append(
            LayerInfo(row_name, type(module).__name__, window.describe() if window else "", list(out.shape[1:]),
                      params, trainable, cost.macs, cost.flops, cost.connections, rf,
                      out[0].numel() * out.element_size())
        )  # fmt: skip


def _sliced(rf: ReceptiveField, index: tuple) -> ReceptiveField:
    """``x[:, :, ::2, ::2]`` (ResNet option-A shortcuts) keeps every s-th unit: the jump grows."""
    jump, start = list(rf.jump), list(rf.start)
    for dim in (0, 1):
        s = index[dim + 2] if len(index) > dim + 2 else slice(None)
        if isinstance(s, slice):
            start[dim] += (s.start or 0) * jump[dim]
            jump[dim] *= s.step or 1
    return ReceptiveField(rf.size, tuple(jump), tuple(start))


def _check_input(name: str, module: nn.Module, args) -> None:
    """Turn the usual shape failures into messages that name the layer (raised before the op runs)."""
    x = next(_tensors(args), None)
    if x is None:
        return
    channels = getattr(module, "in_channels", None)
    if channels is not None and x.dim() == 4 and x.shape[1] != channels:
        raise ShapeError(
            f"layer {name!r} ({type(module).__name__}) expects {channels} input channel(s) but got "
            f"{x.shape[1]} (feature map {tuple(x.shape[1:])})"
        )
    if isinstance(module, nn.Linear) and x.shape[-1] != module.in_features:
        raise ShapeError(
            f"layer {name!r} (Linear) expects {module.in_features} input features but got {x.shape[-1]}: "
            "the classifier head is built for one input size"
        )
    if x.dim() == 4:
        w = window_of(module, tuple(x.shape[-2:]))
        if w is not None and not isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            hw = output_shape_2d(x.shape[-2:], w.kernel, w.stride, w.padding, w.dilation, w.ceil_mode)
            if min(hw) < 1:
                raise _Collapse(name, type(module).__name__, w, tuple(x.shape[-2:]))


# ------------------------------------------------------------------------------------------ model setup


def parse_input_size(text: str | int | tuple | list) -> tuple[int, int, int]:
    """``"1x32x32"``, ``"3,224,224"``, ``(3, 224, 224)`` -> (C, H, W); ``"32"`` is not enough (no channels)."""
    if isinstance(text, (tuple, list)):
        parts = list(text)
    else:
        parts = str(text).lower().replace("×", "x").replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise ShapeError(f"input size {text!r} is not of the form CxHxW, e.g. 1x32x32") from None
    if len(dims) == 2:
        raise ShapeError(f"input size {text!r} has no channel count: write CxHxW, e.g. 1x32x32 or 3x224x224")
    if len(dims) != 3 or min(dims) < 1:
        raise ShapeError(f"input size {text!r} must be three positive integers CxHxW, e.g. 3x224x224")
    if max(dims) > 1 << 16:
        raise ShapeError(f"input size {text!r} is too large (each dimension at most 65536)")
    return dims  # type: ignore[return-value]


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs",
               "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")  # fmt: skip


def _meta_copy(model: nn.Module, memo: dict[int, object] | None = None) -> nn.Module:
    """A structural copy of ``model`` on the meta device: new module objects (shared ones stay shared), meta
    parameters and buffers, no weight data copied. Much cheaper than ``copy.deepcopy`` (ResNet-152: ~10×)."""
    memo = {} if memo is None else memo
    if id(model) in memo:
        return memo[id(model)]  # type: ignore[return-value]
    new = copy.copy(model)  # a new __dict__ holding the same attribute values
    memo[id(model)] = new

    def meta(t):
        if t is None:
            return None
        if id(t) not in memo:
            # empty_strided, not empty_like: the latter runs a Python decomposition on meta (~10x slower)
            m = torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device="meta")
            memo[id(t)] = nn.Parameter(m, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else m
        return memo[id(t)]

    # straight into __dict__: Module.__setattr__'s checks cost more than the copy itself
    d = new.__dict__
    d["_parameters"] = {k: meta(v) for k, v in model._parameters.items()}
    d["_buffers"] = {k: meta(v) for k, v in model._buffers.items()}
    d["_modules"] = {k: None if v is None else _meta_copy(v, memo) for k, v in model._modules.items()}
    for attr in _HOOK_DICTS:  # hooks we add to the copy must not reach the original
        if attr in d:
            d[attr] = type(d[attr])(d[attr])
    return new


def _prepare(model_or_name, model_kwargs: dict) -> tuple[nn.Module, str]:
    if isinstance(model_or_name, str):
        get_model_info(model_or_name)  # unknown names fail here, with suggestions
        with torch.device("meta"):
            model = create_model(model_or_name, **model_kwargs)
        return model.to("meta"), model_or_name
    model = model_or_name
    name = getattr(model, "model_name", type(model).__name__)
    if all(p.is_meta for p in itertools.chain(model.parameters(), model.buffers())):
        return model, name
    meta = _meta_copy(model)
    return meta, name


def _default_input(model: nn.Module, name: str) -> tuple[int, int, int]:
    size = getattr(model, "default_input_size", None)
    if size is None:
        raise ShapeError(f"no input size known for {name}: pass input_size=(C, H, W)")
    return tuple(size)  # type: ignore[return-value]


# Normalisation layers keep their input's shape, but PyTorch's meta kernels for them run Python
# decompositions (batch norm is ~75% of a ResNet-152 analysis). Their output shape is known: skip the op.
_SHAPE_KEEPING = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LocalResponseNorm,
    nn.GroupNorm,
    nn.LayerNorm,
)


def _same_shape(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return torch.empty_strided(x.size(), x.stride(), dtype=x.dtype, device=x.device)


# Plain convolutions and pools: their meta kernels are Python too (ResNet-152: ~40% of what remained after
# the norm layers). The output shape is the arithmetic's, which the tests check against torch's real layers;
# the pre-hook has already rejected a wrong channel count or a collapsed map. Only the exact classes with
# their own forward are replaced, so a subclass with a custom forward still runs for real.
_SHAPE_ARITHMETIC = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def _arithmetic_forward(module: nn.Module):
    out_channels = getattr(module, "out_channels", None)

    def forward(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if x.dim() != 4:  # unbatched or odd input: let the real meta kernel decide (and raise)
            return type(module).forward(module, x, *args, **kwargs)
        w = window_of(module, tuple(x.shape[-2:]))
        hw = output_shape_2d(x.shape[-2:], w.kernel, w.stride, w.padding, w.dilation, w.ceil_mode)
        return torch.empty((x.shape[0], out_channels or x.shape[1], *hw), dtype=x.dtype, device=x.device)

    return forward


def _run(model: nn.Module, input_size: tuple[int, int, int]) -> _Tracer:
    tracer = _Tracer(model)
    handles, patched = [], []
    for name, m in model.named_modules():
        leaf = next(m.children(), None) is None
        if name == "" and not leaf:
            continue
        if isinstance(m, _SHAPE_KEEPING) and "forward" not in vars(m):
            m.forward = _same_shape
            patched.append(m)
        elif (
            type(m) in _SHAPE_ARITHMETIC
            and "forward" not in vars(m)
            and not getattr(m, "return_indices", False)
            and not isinstance(m.padding, str)  # 'same' may pad unevenly: the real kernel knows how
        ):
            m.forward = _arithmetic_forward(m)
            patched.append(m)
        handles.append(m.register_forward_pre_hook(tracer.pre_hook(name or type(m).__name__, leaf)))
        handles.append(m.register_forward_hook(tracer.post_hook(name or type(m).__name__, leaf)))
    was_training = model.training
    model.eval()
    x = torch.empty((1, *input_size), device="meta")
    tracer._set_rf(x, ReceptiveField())
    try:
        with torch.no_grad(), tracer:
            model(x)
    except (_Collapse, ShapeError):
        raise
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ShapeError(
            f"the forward pass fails at layer {tracer.current!r} for input {_fmt(input_size)}: {first}"
        ) from None
    finally:
        tracer._unquiet()  # a leaf that raised never reached its post-hook
        for h in handles:
            h.remove()
        for m in patched:
            del m.forward
        model.train(was_training)
    return tracer


def _fmt(size) -> str:
    return "×".join(str(s) for s in size)


def _smallest_working(model: nn.Module, input_size: tuple[int, int, int]) -> int | None:
    """Smallest square side at which no feature map collapses (binary search; meta forwards are cheap)."""

    def collapses(side: int) -> bool:
        try:
            _run(model, (input_size[0], side, side))
        except _Collapse:
            return True
        except ShapeError:
            return False
        return False

    hi = max(input_size[1:])
    while collapses(hi):
        hi *= 2
        if hi > 1 << 14:
            return None
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if collapses(mid):
            lo = mid + 1
        else:
            hi = mid
    return lo


def _blocks(model: nn.Module, rows: list[LayerInfo]) -> list[BlockInfo]:
    """Residual blocks (classes with ``cnnzoo_block = True``, torchvision's BasicBlock/Bottleneck) and,
    for networks with a ``features`` Sequential (VGG, AlexNet), the stages that end in a max-pool."""
    groups: list[tuple[str, str, list[LayerInfo], nn.Module | None]] = []
    by_name: dict[str, list[LayerInfo]] = {}
    for name, m in model.named_modules():
        cls = type(m)
        if getattr(cls, "cnnzoo_block", False) or (
            cls.__module__.startswith("torchvision") and cls.__name__ in ("BasicBlock", "Bottleneck")
        ):
            by_name[name] = []
            groups.append((name, cls.__name__, by_name[name], m))
    if by_name:
        for r in rows:  # a row belongs to every block whose name is a dotted prefix of its own
            parts = r.name.split("#")[0].split(".")
            for i in range(1, len(parts) + 1):
                members = by_name.get(".".join(parts[:i]))
                if members is not None:
                    members.append(r)
    features = getattr(model, "features", None)
    if not groups and isinstance(features, nn.Sequential):
        stage: list[LayerInfo] = []
        for r in rows:
            if not r.name.startswith("features."):
                continue
            stage.append(r)
            if r.type == "MaxPool2d":
                groups.append((f"stage{len(groups) + 1}", "stage", stage, None))
                stage = []
    out = []
    for name, kind, members, module in groups:
        if not members:
            continue
        if module is None:
            params, trainable = sum(r.params for r in members), sum(r.trainable_params for r in members)
        else:
            ps = list(module.parameters())
            params, trainable = sum(p.numel() for p in ps), sum(p.numel() for p in ps if p.requires_grad)
        out.append(BlockInfo(
            name, kind, [members[0].name, members[-1].name], members[-1].output_shape, params, trainable,
            sum(r.macs for r in members), sum(r.flops for r in members), sum(r.connections for r in members),
            members[-1].receptive_field))  # fmt: skip
    return out


def summary(
    model_or_name: nn.Module | str,
    input_size: tuple[int, int, int] | str | None = None,
    **model_kwargs,
) -> Summary:
    """Analyse a model (or a registered name) for one input of ``input_size = (C, H, W)``.

    >>> s = summary("lenet5")
    >>> s.total["trainable_params"], s.total["connections"]
    (60000, 340908)
    >>> [r.receptive_field.to_dict()["size"] for r in s.layers if r.name in ("c1", "s2", "c3", "s4", "c5")]
    [5, 6, 14, 16, 32]
    """
    model, name = _prepare(model_or_name, model_kwargs)
    size = parse_input_size(input_size) if input_size is not None else _default_input(model, name)
    try:
        tracer = _run(model, size)
    except ShapeError as e:
        default = getattr(model, "default_input_size", None)
        hint = f"; {name} is built for {_fmt(default)}" if default and tuple(default) != size else ""
        raise ShapeError(f"{name}, input {_fmt(size)}: {e}{hint}") from None
    except _Collapse as c:
        smallest = _smallest_working(model, size)
        hint = (
            f" The smallest input that works is {size[0]}×{smallest}×{smallest}."
            if smallest else " No input size up to 16384 works."
        )  # fmt: skip
        k = c.window.kernel
        raise ShapeError(
            f"input {_fmt(size)} is too small for {name}: the feature map collapses at layer {c.layer!r} "
            f"({c.kind} {k[0]}×{k[1]}), whose input is only {c.in_hw[0]}×{c.in_hw[1]}.{hint}"
        ) from None
    rows = tracer.rows
    params = {id(p): p for p in model.parameters()}.values()
    total = {
        "params": sum(p.numel() for p in params),
        "trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "macs": sum(r.macs for r in rows),
        "flops": sum(r.flops for r in rows),
        "connections": sum(r.connections for r in rows),
        "activation_bytes": sum(r.activation_bytes for r in rows),
    }
    rf = next((r.receptive_field for r in reversed(rows) if r.receptive_field is not None), None)
    if rf is not None:
        total["receptive_field"] = rf.to_dict()
    return Summary(name, size, rows, _blocks(model, rows), total)


def trace(model_or_name: nn.Module | str, input_size=None, **model_kwargs) -> list[tuple[str, str, tuple]]:
    """Walk a real tensor through the network (random weights for a name) and return each leaf layer's
    ``(name, type, output shape)`` — what seed 002 prints with ``for layer in net: X = layer(X)``."""
    model = create_model(model_or_name, **model_kwargs) if isinstance(model_or_name, str) else model_or_name
    name = getattr(model, "model_name", type(model).__name__)
    size = parse_input_size(input_size) if input_size is not None else _default_input(model, name)
    summary(model, size)  # clear errors before touching real data
    device = next(model.parameters()).device
    shapes: list[tuple[str, str, tuple]] = []
    handles = [
        m.register_forward_hook(
            lambda mod, a, out, n=n: shapes.append((n, type(mod).__name__, tuple(out.shape)))
        )
        for n, m in model.named_modules()
        if next(m.children(), None) is None and n
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.rand((1, *size), device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return shapes
