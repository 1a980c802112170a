"""The dispatcher-level counter: every ATen operation the forward runs, whoever called it.

The fast path of the analyzer (:mod:`cnnzoo.analysis.recorder`) knows the cost of torch.nn's common layers by
rule and does not run them. Everything else — a layer class it has no rule for (``ConvTranspose2d``,
``MultiheadAttention``, a user's module calling ``F.conv2d(x, self.w)``), a functional call in a forward
(``F.max_pool2d``, ``x @ w``, ``F.scaled_dot_product_attention``) — runs on the meta device, and each ATen
operation it reaches lands here, as in ``torch.utils.flop_counter.FlopCounterMode``: nothing a module or a
function does can hide, since every tensor operation goes through the dispatcher.

Costs of one operation (the conventions of :mod:`cnnzoo.analysis.rules`):

- matrix products and convolutions (``mm``, ``addmm``, ``bmm``, ``baddbmm``, ``convolution`` of any
  dimension, transposed or not): MACs by PyTorch's own formulas (``torch.utils.flop_counter``, FLOPs / 2),
  FLOPs ``2 × MACs`` plus one per output element for a bias;
- elementwise operations (ATen's ``pointwise`` tag): one FLOP per output element; normalisations two;
  reductions, softmax and pools one per input element;
- views, copies, indexing (an embedding lookup too), concatenation, padding and tensor creation: nothing;
- anything else: *uncounted*, named in :attr:`OpCounter.uncounted` (the analyzer refuses it or, when asked,
  marks its row), never a zero passed off as a count.
"""

from __future__ import annotations

import math

import torch

from .._torch_compat import DisableTorchDispatch, TorchDispatchMode, flop_formulas
from ..errors import CnnzooError
from .fields import field_through
from .schema import ReceptiveField

__all__ = ["OpCounter", "UncountedOperation", "op_cost", "attention_cost"]


class UncountedOperation(CnnzooError):
    """The forward runs an operation the analyzer has no cost rule for (and uncounted rows were not
    allowed)."""


_aten = torch.ops.aten
_FORMULAS = flop_formulas()
_BIAS_ARG = {_aten.addmm: 0, _aten.baddbmm: 0, _aten.convolution: 2, _aten._convolution: 2}
_FREE_NAMES = {
    "empty",
    "empty_strided",
    "empty_like",
    "zeros",
    "zeros_like",
    "ones",
    "ones_like",
    "full",
    "full_like",
    "arange",
    "linspace",
    "rand",
    "randn",
    "rand_like",
    "randn_like",
    "randint",
    "scalar_tensor",
    "new_empty",
    "new_empty_strided",
    "new_zeros",
    "new_ones",
    "new_full",
    "lift_fresh",
    "lift_fresh_copy",
    "alias",
    "detach",
    "clone",
    "copy_",
    "copy",
    "_to_copy",
    "to",
    "contiguous",
    "fill_",
    "fill",
    "zero_",
    "view",
    "_unsafe_view",
    "reshape",
    "expand",
    "expand_as",
    "permute",
    "transpose",
    "t",
    "squeeze",
    "unsqueeze",
    "flatten",
    "unflatten",
    "select",
    "slice",
    "narrow",
    "split",
    "split_with_sizes",
    "chunk",
    "unbind",
    "index",
    "index_select",
    "embedding",
    "gather",
    "cat",
    "stack",
    "constant_pad_nd",
    "pad",
    "roll",
    "flip",
    "repeat",
    "as_strided",
    "_reshape_alias",
    "unfold",
    "diagonal",
    "tril",
    "triu",
    "masked_fill",
    "masked_fill_",
    "where",
    "index_put",
    "index_put_",
    "slice_scatter",
    "select_scatter",
    "_unsafe_index",
    "channel_shuffle",
    "pixel_shuffle",
    "pixel_unshuffle",
    "native_dropout",
    "dropout",
    "bernoulli_",
    "bernoulli",
    "_local_scalar_dense",
    "item",
    "set_",
    "resize_",
    "_safe_softmax_mask",
    "reflection_pad2d",
    "replication_pad2d",
    "reflection_pad1d",
    "replication_pad1d",
    "max_unpool2d",
    "max_unpool3d",
    "sym_size",
    "sym_stride",
    "sym_numel",
    "is_same_size",
    "one_hot",
    "_assert_async",
    "_assert_tensor_metadata",
    "_assert_scalar",
    "sort",
    "argmax",
    "argmin",
    "topk",
}
_NORMS = {
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training",
    "native_layer_norm",
    "native_group_norm",
    "batch_norm",
    "layer_norm",
    "group_norm",
    "_batch_norm_with_update",
    "_batch_norm_no_update",
    "rms_norm",
    "_fused_rms_norm",
}
_PER_INPUT = {
    "_softmax",
    "_safe_softmax",
    "_log_softmax",
    "softmax",
    "log_softmax",
    "sum",
    "mean",
    "amax",
    "amin",
    "max",
    "min",
    "var_mean",
    "var",
    "std",
    "std_mean",
    "norm",
    "linalg_vector_norm",
    "prod",
    "logsumexp",
    "max_pool1d",
    "max_pool2d_with_indices",
    "max_pool3d_with_indices",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "_adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "_adaptive_avg_pool3d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "adaptive_max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "mean_dim",
    "cumsum",
}
_PER_OUTPUT = {
    "upsample_nearest1d",
    "upsample_nearest2d",
    "upsample_nearest3d",
    "upsample_bilinear2d",
    "upsample_linear1d",
    "upsample_bicubic2d",
    "upsample_trilinear3d",
    "_upsample_nearest_exact2d",
    "_upsample_bilinear2d_aa",
    "grid_sampler_2d",
    "im2col",
    "col2im",
}


def _numel(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel()
    if isinstance(obj, (list, tuple)):
        return next((o.numel() for o in obj if isinstance(o, torch.Tensor)), 0)
    return 0


def attention_cost(q, k, v) -> tuple[int, int]:
    """(MACs, FLOPs) of ``scaled_dot_product_attention`` (q: …×L×E, k: …×S×E, v: …×S×Ev): the products
    q·kᵀ and attention·v, and per score a scale and a softmax (3 FLOPs)."""
    scores = math.prod(q.shape[:-2]) * q.shape[-2] * k.shape[-2]
    macs = scores * (q.shape[-1] + v.shape[-1])
    return macs, 2 * macs + 3 * scores


def op_cost(func, args, kwargs, out) -> tuple[int, int] | None:
    """(MACs, FLOPs) of one ATen operation on these arguments (whole tensors, not per image); None when
    the analyzer cannot count it."""
    packet = func._overloadpacket
    formula = _FORMULAS.get(packet)
    if formula is not None:
        flops = formula(*args, **kwargs, out_val=out)
        macs = flops // 2
        b = _BIAS_ARG.get(packet)
        bias = _numel(out) if b is not None and len(args) > b and isinstance(args[b], torch.Tensor) else 0
        return macs, 2 * macs + bias
    name = packet.__name__
    if name in _FREE_NAMES:
        return 0, 0
    if name.startswith("_scaled_dot_product") and "backward" not in name:
        return attention_cost(*args[:3])
    if name in _NORMS:
        return 0, 2 * _numel(out)
    if name in _PER_INPUT:
        return 0, _numel(args[0])
    if name in _PER_OUTPUT:
        return 0, _numel(out)
    if torch.Tag.pointwise in func.tags:
        return 0, _numel(out)
    if func.is_view:
        return 0, 0
    return None


_MIXING = {_aten.mm, _aten.bmm, _aten.baddbmm, _aten.addmm}


def packet_mixes_positions(func) -> bool:
    """Matrix products: with two activations as operands (q·kᵀ, attention·v) they mix positions."""
    return func._overloadpacket in _MIXING


def _layer_norm(x, normalized_shape, *rest):
    """``native_layer_norm`` on meta by its shapes (PyTorch's meta form is a Python decomposition, ~2 ms):
    the output, and the mean and 1/std per normalised group."""
    if not x.is_meta:
        return None
    stats = (*x.shape[: x.dim() - len(normalized_shape)], *(1,) * len(normalized_shape))
    with DisableTorchDispatch():
        out = torch.empty_strided(x.size(), x.stride(), dtype=x.dtype, device=x.device)
        return (
            out,
            torch.empty(stats, dtype=x.dtype, device=x.device),
            torch.empty(stats, dtype=x.dtype, device=x.device),
        )


_SHORTCUTS = {_aten.native_layer_norm.default: _layer_norm}


class OpCounter(TorchDispatchMode):
    """Sums the cost of every ATen operation run while it is active. The analyzer reads the sums before and
    after a layer or a functional call and attributes the difference to that row. Parameters that reach an
    operation are noted too (``params_used``), so that a parameter used outside its own layer (``F.conv2d(x,
    self.w)``, attention's projection weights) is counted in the row of the operation that used it.

    ``uncounted``: (ATen name, where in the forward) of operations without a cost rule; ``where`` is set by
    the recorder before each call it hands down."""

    def __init__(self, param_ids: dict[int, object]) -> None:
        super().__init__()
        self.macs = self.flops = 0
        self.param_ids = param_ids  # id(parameter) -> anything (only membership matters)
        self.params_used: list[int] = []
        self.uncounted: list[tuple[str, str]] = []
        self.where = ""
        self.strict = True  # an uncounted operation raises UncountedOperation
        self.fields: dict = {}  # id(tensor) -> its receptive field (the recorder's, set by track())
        self.kept: list = []  # tensors with a field, held so that their ids stay unique (the recorder's)
        self.whole = (1, 1)  # the input's (H, W): the field of a unit that sees all of it

    def track(self, fields: dict, kept: list) -> None:
        """Receptive fields: the recorder's map of them for this run, and its list of the tensors they
        belong to (held, so that their ids stay unique)."""
        self.fields, self.kept = fields, kept

    def mark(self) -> tuple[int, int, int, int]:
        """Where the counts stand (compared and subtracted by the recorder)."""
        return self.macs, self.flops, len(self.params_used), len(self.uncounted)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        shortcut = _SHORTCUTS.get(func)
        out = shortcut(*args) if shortcut is not None else None
        if out is None:
            out = func(*args, **kwargs)
        cost = op_cost(func, args, kwargs, out)
        if cost is None:
            name = str(func._overloadpacket).removeprefix("aten.")
            if self.strict:
                raise UncountedOperation(
                    f"cannot count the operation {name!r} run by {self.where or 'the forward'!r}: the analyzer "
                    "has no cost rule for it (--allow-uncounted shows its row marked uncounted)"
                )
            self.uncounted.append((name, self.where))
        else:
            self.macs += cost[0]
            self.flops += cost[1]
        ids, fields, field = self.param_ids, self.fields, None
        for a in args:
            if isinstance(a, torch.Tensor):
                if id(a) in ids:
                    self.params_used.append(id(a))
                r = fields.get(id(a))
                if r is not None:
                    field = r.merge(field)
            elif isinstance(a, (list, tuple)):  # cat, stack
                for t in a:
                    r = fields.get(id(t)) if isinstance(t, torch.Tensor) else None
                    if r is not None:
                        field = r.merge(field)
        if (
            field is not None
            and packet_mixes_positions(func)
            and sum(isinstance(a, torch.Tensor) and id(a) in fields for a in args) >= 2
        ):  # activations times activations (attention): every position reaches every other
            field = ReceptiveField(self.whole, field.jump, tuple(s / 2 for s in self.whole))
        if field is not None:
            first = (
                out if isinstance(out, torch.Tensor) else out[0] if isinstance(out, (tuple, list)) else None
            )
            if isinstance(first, torch.Tensor):
                fields[id(first)] = field_through(func._overloadpacket.__name__, args, first, field)
                self.kept.append(first)
        return out
