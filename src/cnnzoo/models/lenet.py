"""The LeNet family.

``lenet5`` is the 1998 network of LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to
document recognition" (Proc. IEEE), Fig. 2 — as the paper builds it, not as tutorials simplify it:

    input 1×32×32
    C1  conv 5×5, 6 maps            -> 6×28×28    156 params  122,304 connections
    S2  subsampling 2×2 (trainable)  -> 6×14×14     12 params    5,880
    C3  conv 5×5, 16 maps, Table I   -> 16×10×10  1,516 params  151,600
    S4  subsampling 2×2 (trainable)  -> 16×5×5      32 params    2,000
    C5  conv 5×5, 120 maps           -> 120×1×1  48,120 params   48,120
    F6  full, 84 units               -> 84       10,164 params   10,164
    out Euclidean RBF, 10 units       -> 10        840 fixed        840
                                                  60,000 trainable, 340,908 connections

Every layer up to F6 is followed by the scaled tanh ``1.7159·tanh(2a/3)``.

The variants that courses and tutorials describe (``lenet5_ng``, ``lenet_d2l``, ``keras_mnist_cnn``, ``keras_three_conv``,
``lenet5_modern``) are one table-driven :class:`SmallCNN` each, at the end of this file.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import CnnzooError, ShapeError
from ..layers import LENET5_C3_TABLE, RBFOutput, ScaledTanh, SparseConv2d, Subsampling
from ..shapes import conv_output_size, min_input_for_chain, pool_output_size, spatial_size
from .registry import Published, register_model

LECUN_1998 = "LeCun et al. 1998, Gradient-based learning applied to document recognition"


class LeNet5(nn.Module):
    """LeNet-5 (1998). Input (N, 1, 32, 32); output (N, num_classes) negative RBF distances (logits)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        # C3's Table I is defined on C1's six maps; other input channel counts change only C1.
        self.c1 = nn.Conv2d(in_channels, 6, kernel_size=5)
        self.act1 = ScaledTanh()
        self.s2 = Subsampling(6, 2)
        self.act2 = ScaledTanh()
        self.c3 = SparseConv2d(6, LENET5_C3_TABLE, kernel_size=5)
        self.act3 = ScaledTanh()
        self.s4 = Subsampling(16, 2)
        self.act4 = ScaledTanh()
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)  # a conv, not a Linear: bigger inputs give a map
        self.act5 = ScaledTanh()
        self.flatten = nn.Flatten()
        self.f6 = nn.Linear(120, 84)
        self.act6 = ScaledTanh()
        self.output = RBFOutput(84, num_classes)
        self.init_paper_()

    @torch.no_grad()
    def init_paper_(self) -> None:
        """Paper appendix C: weights uniform in ±2.4/F_i (F_i = fan-in); biases alike; coefficients 1."""
        for m in (self.c1, self.c3, self.c5, self.f6):
            fan_in = (
                m.weight[0].numel()
                if not isinstance(m, SparseConv2d)
                else (sum(m.connections_per_output) / m.out_channels * m.kernel_size**2)
            )
            bound = 2.4 / fan_in
            m.weight.uniform_(-bound, bound)
            m.bias.uniform_(-bound, bound)
        for s in (self.s2, self.s4):
            s.weight.fill_(0.25)  # a sum of 4 inputs × 1/4 starts as a plain average
            s.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.c1(x))  # (N, 6, 28, 28)
        x = self.act2(self.s2(x))  # (N, 6, 14, 14)
        x = self.act3(self.c3(x))  # (N, 16, 10, 10)
        x = self.act4(self.s4(x))  # (N, 16, 5, 5)
        x = self.act5(self.c5(x))  # (N, 120, 1, 1)
        x = self.act6(self.f6(self.flatten(x)))  # (N, 84)
        return self.output(x)  # (N, num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        self.output = RBFOutput(self.f6.out_features, num_classes).to(self.f6.weight.device)


def lenet5_loss(logits: torch.Tensor, target: torch.Tensor, j: float = 0.1) -> torch.Tensor:
    """The paper's MAP criterion (eq. 9): ``E = y_target + log(e^{-j} + Σ_i e^{-y_i})``.

    ``logits`` are LeNet-5's outputs (``-y``, negative RBF distances). This is cross-entropy with one extra
    always-present "rubbish" class of constant logit ``-j``, which keeps the penalties from collapsing.
    """
    rubbish = torch.full_like(logits[:, :1], -j)
    return (
        -logits.gather(1, target[:, None]).squeeze(1)
        + torch.logsumexp(torch.cat([rubbish, logits], dim=1), dim=1)
    ).mean()


@register_model(
    input_size=(1, 32, 32),
    family="lenet",
    paper=LECUN_1998,
    published=Published(
        "LeCun et al. 1998 (Fig. 2, §III.C)",
        params=60_840,
        trainable_params=60_000,
        connections=340_908,
        error="0.95% test error on MNIST (0.8% with distorted training data)",
    ),
)
def lenet5(num_classes: int = 10, in_channels: int = 1) -> LeNet5:
    """LeNet-5 as in the 1998 paper: scaled tanh, trainable subsampling, sparse C3 (Table I), RBF output, 1×32×32.

    The 840 RBF centres are fixed (not trained)."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels)


# --- The variants courses and tutorials describe -------------------------------------------------------------------
# All are "conv -> activation -> pool" stages followed by fully connected layers, so one table-driven class
# builds them; each variant is one config line.

NG_COURSE = "Ng, Deep Learning Specialization (course 4): LeNet-5 as taught"
D2L = "Zhang et al., Dive into Deep Learning (MXNet), ch. 5 LeNet"
KERAS_MNIST = "Keras MNIST CNN tutorial"
KERAS_THREE_CONV = "TensorFlow/Keras three-conv CNN"
COUNTED = "the course or tutorial, counted from its layer sizes"  # they print the layers, not the total

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
_POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


@dataclass(frozen=True)
class SmallCNNConfig:
    """A LeNet-style network as data: each conv is followed by the activation and a ``pool_kernel`` pool
    (stride = kernel, as in Keras and the tutorials), then ``hidden`` fully connected layers."""

    convs: tuple[tuple[int, int, int], ...]  # (out_channels, kernel, padding) per stage
    hidden: tuple[int, ...]  # fully connected widths before the output layer
    activation: str = "relu"  # "relu" | "tanh" | "sigmoid"
    pool: str = "max"  # "max" | "avg"
    pool_kernel: int = 2
    xavier_init: bool = False  # Keras's glorot_uniform / d2l's Xavier, zero biases


class SmallCNN(nn.Module):
    """conv-act-pool stages, flatten, FC layers. Layer names: ``features.conv1/act1/pool1 …``,
    ``classifier.fc1/act_fc1 … fc_out``. The flatten size follows ``input_size`` (no lazy layers)."""

    def __init__(
        self, cfg: SmallCNNConfig, num_classes: int = 10, in_channels: int = 1, input_size=(28, 28)
    ) -> None:
        super().__init__()
        if cfg.activation not in _ACTIVATIONS:
            raise CnnzooError(f"activation must be one of {sorted(_ACTIVATIONS)}, not {cfg.activation!r}")
        if cfg.pool not in _POOLS:
            raise CnnzooError(f"pool must be one of {sorted(_POOLS)}, not {cfg.pool!r}")
        self.cfg = cfg
        act, pool = _ACTIVATIONS[cfg.activation], _POOLS[cfg.pool]
        h, w = spatial_size(input_size)
        layers: dict[str, nn.Module] = {}
        c = in_channels
        for i, (out, k, pad) in enumerate(cfg.convs, start=1):
            layers[f"conv{i}"] = nn.Conv2d(c, out, kernel_size=k, padding=pad)
            layers[f"act{i}"] = act()
            layers[f"pool{i}"] = pool(cfg.pool_kernel)  # stride = kernel: Keras's and the tutorials' pooling
            h, w = (pool_output_size(conv_output_size(n, k, padding=pad), cfg.pool_kernel) for n in (h, w))
            if h < 1 or w < 1:
                raise ShapeError(
                    f"input {spatial_size(input_size)} is too small: the map collapses at features.pool{i}; "
                    f"use at least {self.min_input_size(cfg)}×{self.min_input_size(cfg)}"
                )
            c = out
        self.features = nn.Sequential(OrderedDict(layers))
        head: dict[str, nn.Module] = {"flatten": nn.Flatten()}
        features = c * h * w  # e.g. 16×5×5 = 400 for LeNet-5
        for j, width in enumerate(cfg.hidden, start=1):
            head[f"fc{j}"] = nn.Linear(features, width)
            head[f"act_fc{j}"] = act()
            features = width
        head["fc_out"] = nn.Linear(features, num_classes)
        self.classifier = nn.Sequential(OrderedDict(head))
        if cfg.xavier_init:
            self.init_paper_()

    @staticmethod
    def min_input_size(cfg: SmallCNNConfig) -> int:
        chain = []
        for _, k, pad in cfg.convs:
            chain += [dict(kernel=k, padding=pad), dict(kernel=cfg.pool_kernel, stride=cfg.pool_kernel)]
        return min_input_for_chain(chain)

    @torch.no_grad()
    def init_paper_(self) -> None:
        """Glorot/Xavier uniform weights and zero biases (Keras's defaults; d2l's ``init.Xavier()``)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # (N, C, H, W) -> (N, num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        old = self.classifier.fc_out
        self.classifier.fc_out = nn.Linear(old.in_features, num_classes).to(old.weight.device)


@register_model(
    input_size=(1, 32, 32), family="lenet", paper=NG_COURSE, published=Published(COUNTED, params=61_706)
)
def lenet5_ng(num_classes: int = 10, in_channels: int = 1, input_size=(32, 32)) -> SmallCNN:
    """LeNet-5 as Ng's course draws it: 32×32, conv6 5×5, avgpool, conv16 5×5, avgpool, 400-120-84-10.

    Plain tanh (the course says only "sigmoid/tanh"), average pooling, a softmax output instead of the
    paper's RBF units, and a full C3 (2,416 weights instead of Table I's 1,516)."""
    cfg = SmallCNNConfig(convs=((6, 5, 0), (16, 5, 0)), hidden=(120, 84), activation="tanh", pool="avg")
    return SmallCNN(cfg, num_classes, in_channels, input_size)


@register_model(
    input_size=(1, 28, 28), family="lenet", paper=D2L, published=Published(COUNTED, params=44_426)
)
def lenet_d2l(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28)) -> SmallCNN:
    """d2l's LeNet: 28×28, sigmoid, conv6 5×5 -> maxpool (6×12×12) -> conv16 5×5 (16×8×8) -> maxpool
    (16×4×4) -> 120 -> 84 -> 10; Xavier init."""
    cfg = SmallCNNConfig(
        convs=((6, 5, 0), (16, 5, 0)), hidden=(120, 84), activation="sigmoid", pool="max", xavier_init=True
    )
    return SmallCNN(cfg, num_classes, in_channels, input_size)


@register_model(
    input_size=(1, 28, 28), family="lenet", paper=KERAS_MNIST, published=Published(COUNTED, params=38_186)
)
def keras_mnist_cnn(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28)) -> SmallCNN:
    """Keras MNIST CNN: Conv(32, 4×4) -> MaxPool 3×3 -> Conv(64, 4×4) -> MaxPool 3×3 -> 64 -> 10.

    28 -> 25 -> 8 -> 5 -> 1: the flatten has 64 features."""
    cfg = SmallCNNConfig(
        convs=((32, 4, 0), (64, 4, 0)), hidden=(64,), activation="relu", pool_kernel=3, xavier_init=True
    )
    return SmallCNN(cfg, num_classes, in_channels, input_size)


@register_model(
    input_size=(1, 28, 28),
    family="lenet",
    paper=KERAS_THREE_CONV,
    published=Published(COUNTED, params=101_578),
)
def keras_three_conv(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28)) -> SmallCNN:
    """Three-conv Keras CNN: 32-64-128 3×3 convs, each + maxpool 2, -> 64 -> 10, 28×28.

    28 -> 26 -> 13 -> 11 -> 5 -> 3 -> 1: the flatten has 128 features."""
    cfg = SmallCNNConfig(
        convs=((32, 3, 0), (64, 3, 0), (128, 3, 0)), hidden=(64,), activation="relu", xavier_init=True
    )
    return SmallCNN(cfg, num_classes, in_channels, input_size)


@register_model(input_size=(1, 28, 28), family="lenet", paper=LECUN_1998)
def lenet5_modern(
    num_classes: int = 10,
    in_channels: int = 1,
    input_size=(28, 28),
    activation: str = "relu",
    pool: str = "max",
) -> SmallCNN:
    """LeNet-5 as trained today: 28×28 with padding 2 on conv1 (= the paper's 32×32), ReLU, max pool.

    ``activation`` ("relu" | "tanh" | "sigmoid") and ``pool`` ("max" | "avg") are for the experiments."""
    cfg = SmallCNNConfig(convs=((6, 5, 2), (16, 5, 0)), hidden=(120, 84), activation=activation, pool=pool)
    return SmallCNN(cfg, num_classes, in_channels, input_size)
