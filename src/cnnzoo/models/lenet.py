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
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import LENET5_C3_TABLE, RBFOutput, ScaledTanh, SparseConv2d, Subsampling
from ..registry import register_model

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
            fan_in = m.weight[0].numel() if not isinstance(m, SparseConv2d) else (
                sum(m.connections_per_output) / m.out_channels * m.kernel_size**2)
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


@register_model(input_size=(1, 32, 32), family="lenet", paper=LECUN_1998)
def lenet5(num_classes: int = 10, in_channels: int = 1) -> LeNet5:
    """LeNet-5 as in the 1998 paper: scaled tanh, trainable subsampling, sparse C3 (Table I), RBF output."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels)

