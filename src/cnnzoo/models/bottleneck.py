"""1×1 convolutions as bottlenecks (Lin et al. 2013 "Network in network"; Szegedy et al. 2014 "Going deeper
with convolutions", the Inception module's dimension reduction; the cost example of Ng's course).

A 1×1 conv mixes channels at each pixel: 28×28×192 -> 32 filters 1×1 = 192·32 + 32 = 6,176 params and
28·28·32·192 = 4,816,896 MACs. The cost example of Ng's course, on a 28×28×192 input, 32 output maps, 'same':

    inception_naive_5x5       5×5 conv 192 -> 32                          120,422,400 MACs
    inception_bottleneck_5x5  1×1 conv 192 -> 16, then 5×5 conv 16 -> 32    2,408,448 + 10,035,200
                                                                          = 12,443,648 MACs (~10× less)

Both are registered as tiny classifiers so every tool can build, train and analyse them: after the conv part
comes a global average pool and a Linear(32, num_classes) head. The MACs above are the conv part's; the head
adds 32·num_classes (320 for 10 classes), and the analyzer reports each layer separately.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model

SZEGEDY_2014 = "Szegedy et al. 2014, Going deeper with convolutions (1×1 reduction, after Lin et al. 2013)"


class Bottleneck1x1(nn.Module):
    """1×1 reduce -> ReLU -> k×k conv ('same') -> ReLU. (N, in, H, W) -> (N, out, H, W).

    With ``reduce_channels=None`` there is no 1×1 layer: the plain ("naive") k×k conv, for comparison."""

    cnnzoo_block = True  # shown as a block by the analyzer

    def __init__(
        self, in_channels: int, reduce_channels: int | None, out_channels: int, kernel_size: int = 5
    ) -> None:
        super().__init__()
        mid = in_channels if reduce_channels is None else reduce_channels
        self.reduce = (
            nn.Conv2d(in_channels, mid, kernel_size=1) if reduce_channels is not None else nn.Identity()
        )
        self.reduce_act = nn.ReLU(inplace=True) if reduce_channels is not None else nn.Identity()
        # padding k//2 = 'same' for odd k at stride 1: 28×28 stays 28×28
        self.conv = nn.Conv2d(mid, out_channels, kernel_size=kernel_size, padding=kernel_size // 2)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(self.reduce_act(self.reduce(x))))


class ConvCostDemo(nn.Module):
    """A :class:`Bottleneck1x1` on 192×28×28 input, then global average pool and a linear head."""

    def __init__(self, reduce_channels: int | None, num_classes: int = 10, in_channels: int = 192) -> None:
        super().__init__()
        self.block = Bottleneck1x1(in_channels, reduce_channels, 32, kernel_size=5)  # (N, 32, 28, 28)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))  # (N, 32, 1, 1): the head works at any input size
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.block(x)), 1))  # (N, num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.fc.in_features, num_classes).to(self.fc.weight.device)


@register_model(input_size=(192, 28, 28), family="1x1", paper=SZEGEDY_2014)
def inception_naive_5x5(num_classes: int = 10, in_channels: int = 192, input_size=(28, 28)) -> ConvCostDemo:
    """5×5 conv, 32 filters, on 28×28×192 'same': 120,422,400 MACs in the conv (+ a small GAP/linear head)."""
    return ConvCostDemo(None, num_classes, in_channels)


@register_model(input_size=(192, 28, 28), family="1x1", paper=SZEGEDY_2014)
def inception_bottleneck_5x5(
    num_classes: int = 10, in_channels: int = 192, input_size=(28, 28)
) -> ConvCostDemo:
    """1×1 conv to 16 channels, then 5×5 conv to 32, on 28×28×192: 12,443,648 MACs in the convs (~10× less)."""
    return ConvCostDemo(16, num_classes, in_channels)
