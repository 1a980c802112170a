"""Cost rules: MACs, FLOPs and connections of one layer call, from its hyper-parameters and shapes.

Conventions (stated in every summary's header and in docs/analyzer.md):

- **MACs**: multiply-accumulates against weights — conv and linear layers (torchvision's ``_ops``, fvcore,
  torchinfo's "Mult-Adds", the ResNet paper's "FLOPs"); also LeNet's weighted subsampling (one per output)
  and RBF units (one per input-centre pair).
- **FLOPs**: ``2 × MACs`` + one per bias add, plus elementwise work: activations 1 per element (scaled tanh 3),
  batch norm 2 per element (folded to scale + shift), LRN ``2·size + 2`` per element, max-pool ``k² − 1``
  comparisons per output, average pool ``k²`` per output, adaptive average pool one add per input element and
  one divide per output, residual additions and other elementwise ops 1 per element, dropout/reshape 0.
- **Connections** (LeCun 1998): each input-to-output link, the bias counted as one input:
  conv ``(k·k·c_in_connected + 1)·c_out·h·w``; subsampling ``(window + 1)·maps·h·w``; full ``(in + 1)·out``;
  RBF ``in·out``; parameter-free pooling ``window·out``; elementwise layers 0 (they belong to their unit).

All counts are per image (batch 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from ..layers import RBFOutput, ScaledTanh, SparseConv2d, Subsampling
from ..shapes import pair

CONVENTIONS = (
    "MACs = multiply-accumulates with weights (conv, linear; LeNet subsampling and RBF); "
    "FLOPs = 2×MACs + bias adds + activations/pooling/normalisation/additions (rules: docs/analyzer.md); "
    "connections by LeCun's rule (bias = one input); per image."
)


@dataclass(slots=True)
class Cost:
    macs: int = 0
    flops: int = 0
    connections: int = 0


@dataclass(frozen=True)
class Window:
    """A sliding window's geometry, for the receptive field and the collapse check."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False

    def describe(self) -> str:
        k, s, p = self.kernel, self.stride, self.padding
        txt = f"{k[0]}×{k[1]}" if k[0] != k[1] else f"{k[0]}×{k[0]}"
        if s != (1, 1):
            txt += f" s{s[0]}" if s[0] == s[1] else f" s{s[0]},{s[1]}"
        if p != (0, 0):
            txt += f" p{p[0]}" if p[0] == p[1] else f" p{p[0]},{p[1]}"
        if self.dilation != (1, 1):
            txt += f" d{self.dilation[0]}"
        return txt


ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.Tanh,
    nn.Sigmoid,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardtanh,
    nn.Softmax,
    nn.LogSoftmax,
)
POOLS = (nn.MaxPool2d, nn.AvgPool2d)


def _padding_pair(padding, kernel, dilation, stride) -> tuple[int, int]:
    if isinstance(padding, str):  # Conv2d(padding="same") is stride 1 only in PyTorch: symmetric (k-1)/2
        if padding == "valid":
            return (0, 0)
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))  # type: ignore[return-value]
    return pair(padding)


def window_of(module: nn.Module, in_hw: tuple[int, int] | None = None) -> Window | None:
    """The sliding window of conv/pool-like modules (None for anything else)."""
    if isinstance(module, (nn.Conv2d, SparseConv2d)):
        k, s, d = pair(module.kernel_size), pair(module.stride), pair(module.dilation)
        return Window(k, s, _padding_pair(module.padding, k, d, s), d)
    if isinstance(module, Subsampling):
        k = pair(module.kernel_size)
        return Window(k, k, (0, 0))
    if isinstance(module, POOLS):
        k = pair(module.kernel_size)
        s = pair(module.stride or module.kernel_size)
        d = pair(getattr(module, "dilation", 1))
        return Window(k, s, pair(module.padding), d, bool(module.ceil_mode))
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) and in_hw is not None:
        return adaptive_window(in_hw, module.output_size)
    return None


def adaptive_window(in_hw: tuple[int, int], output_size) -> Window:
    """Adaptive pooling as a fixed window: exact when the input divides evenly, else the largest window."""
    out = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)  # None: keep
    out = tuple(in_hw[i] if o is None else int(o) for i, o in enumerate(out))
    k = tuple(math.ceil(in_hw[i] / out[i]) for i in range(2))
    s = tuple(max(in_hw[i] // out[i], 1) for i in range(2))
    return Window(k, s, (0, 0))  # type: ignore[arg-type]


def _numel(shape) -> int:
    return math.prod(shape[1:]) if len(shape) > 1 else 1  # per image: drop the batch dimension


@dataclass(frozen=True, slots=True)
class CostRule:
    """A leaf layer's cost per output element (per input element for the ``*_per_input`` terms), all divided
    by ``per``. Every rule below is linear in the element counts, so the hot loop of the analyzer only
    multiplies: ``macs = out_n · macs // per`` and so on (``per`` keeps LeNet's C3 exact in integers)."""

    macs: int = 0
    flops: int = 0
    connections: int = 0
    flops_per_input: int = 0
    connections_per_input: int = 0
    per: int = 1

    def __call__(self, in_n: int, out_n: int) -> tuple[int, int, int]:
        """(MACs, FLOPs, connections) of one call with ``in_n`` input and ``out_n`` output elements."""
        return (
            out_n * self.macs // self.per,
            (out_n * self.flops + in_n * self.flops_per_input) // self.per,
            (out_n * self.connections + in_n * self.connections_per_input) // self.per,
        )


def cost_rule(module: nn.Module) -> CostRule:
    """The cost of a leaf module per output element; its hyper-parameters are read once, here."""
    if isinstance(module, nn.Conv2d):
        kh, kw = pair(module.kernel_size)
        fan_in = module.in_channels // module.groups * kh * kw  # MACs per output element
        bias = int(module.bias is not None)
        return CostRule(fan_in, 2 * fan_in + bias, fan_in + bias)
    if isinstance(module, SparseConv2d):  # output map o reads len(table[o]) input maps: per map, then / maps
        k2 = module.kernel_size**2
        links = sum(module.connections_per_output) * k2
        maps = module.out_channels
        conn = sum(c * k2 + 1 for c in module.connections_per_output)
        return CostRule(links, 2 * links + maps, conn, per=maps)
    if isinstance(module, nn.Linear):  # any leading dims: out_n = rows · out_features
        bias = int(module.bias is not None)
        return CostRule(module.in_features, 2 * module.in_features + bias, module.in_features + bias)
    if isinstance(module, Subsampling):
        return CostRule(1, module.window + 1, module.window + 1)
    if isinstance(module, RBFOutput):  # each unit: a squared distance to its centre over every input
        return CostRule(module.in_features, 3 * module.in_features, module.in_features)
    if isinstance(module, POOLS):
        k = pair(module.kernel_size)
        window = k[0] * k[1]
        return CostRule(0, window - 1 if isinstance(module, nn.MaxPool2d) else window, window)
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return CostRule(0, 1, 0, flops_per_input=1, connections_per_input=1)
    if isinstance(module, nn.AdaptiveMaxPool2d):
        return CostRule(0, 0, 0, flops_per_input=1, connections_per_input=1)
    if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm)):
        return CostRule(0, 2, 0)
    if isinstance(module, nn.LocalResponseNorm):
        return CostRule(0, 2 * module.size + 2, 0)
    if isinstance(module, ScaledTanh):
        return CostRule(0, 3, 0)
    if isinstance(module, ACTIVATIONS):
        return CostRule(0, 1, 0)
    return CostRule()  # Dropout, Identity, Flatten, unknown parameter-free layers: no arithmetic


_RULED = (
    nn.Conv2d,
    SparseConv2d,
    nn.Linear,
    Subsampling,
    RBFOutput,
    *POOLS,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.BatchNorm2d,
    nn.BatchNorm1d,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    ScaledTanh,
    *ACTIVATIONS,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.Flatten,
)


def has_cost_rule(module: nn.Module) -> bool:
    """Whether :func:`cost_rule` knows this layer; the cost of any other is what its forward runs."""
    return isinstance(module, _RULED)


ELEMENTWISE_OPS = {
    "add",
    "add_",
    "__add__",
    "__iadd__",
    "__radd__",
    "sub",
    "sub_",
    "__sub__",
    "__isub__",
    "__rsub__",
    "mul",
    "mul_",
    "__mul__",
    "__imul__",
    "__rmul__",
    "div",
    "div_",
    "__truediv__",
    "__itruediv__",
    "relu",
    "relu_",
    "tanh",
    "sigmoid",
    "gelu",
    "silu",
    "leaky_relu",
    "hardtanh",
    "elu",
    "clamp",
    "neg",
    "exp",
    "softmax",
    "log_softmax",
}


def functional_cost(op: str, out_shape: tuple[int, ...]) -> Cost:
    """Ops called in a forward() outside any leaf module (residual additions, F.relu, …)."""
    if op in ELEMENTWISE_OPS:
        return Cost(0, _numel(out_shape), 0)
    return Cost()
