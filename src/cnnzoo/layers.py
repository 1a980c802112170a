"""LeNet-5's own layers (LeCun et al. 1998), each with the paper's parameter and connection counts.

- :class:`ScaledTanh`   ``f(a) = A·tanh(S·a)`` with A = 1.7159, S = 2/3 (paper appendix A).
- :class:`Subsampling`  S2/S4: sum of a 2×2 window × one trainable coefficient + one trainable bias per map.
- :class:`SparseConv2d` C3: each output map sees only the input maps of Table I; only the connected
  weights are stored (1,516 parameters, not 2,416).
- :class:`RBFOutput`    the output layer: Euclidean RBF units with fixed ±1 7×12 bitmaps as centres.

The analyzer reads the attributes these layers expose (``connections_per_output``, ``window``) to count
connections and MACs exactly; it does not guess from tensor shapes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ScaledTanh", "Subsampling", "SparseConv2d", "RBFOutput", "LENET5_C3_TABLE", "RBF_DIGIT_BITMAPS"]


class ScaledTanh(nn.Module):
    """``1.7159 · tanh(2x/3)``: f(±1) = ±1, and the second derivative peaks at ±1 (paper, appendix A)."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.amplitude, self.slope = amplitude, slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


class Subsampling(nn.Module):
    """Sum over a ``kernel × kernel`` window, times a trainable coefficient, plus a trainable bias, per map.

    (N, C, H, W) -> (N, C, H/k, W/k). Parameters: 2·C (S2: 12, S4: 32).
    """

    def __init__(self, channels: int, kernel_size: int = 2) -> None:
        super().__init__()
        self.channels, self.kernel_size, self.stride = channels, kernel_size, kernel_size
        self.window = kernel_size * kernel_size
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # avg_pool × window = the window's sum; one fused op instead of a depthwise conv.
        summed = F.avg_pool2d(x, self.kernel_size) * self.window
        return summed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}"


# Table I of the paper: which S2 maps (columns 0-5) each C3 map (rows 0-15) reads.
# Maps 0-5: three contiguous maps; 6-11: four contiguous; 12-14: four non-contiguous; 15: all six.
# A table laid out as the rows group above.
# fmt: off
LENET5_C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)
# fmt: on


class SparseConv2d(nn.Module):
    """A convolution whose output map ``o`` reads only the input maps ``table[o]``.

    Only connected kernels are stored: ``weight`` is (sum of len(table[o]), k, k). For the forward pass a
    fixed 0/1 placement matrix scatters them into a dense (out, in, k, k) kernel (one small matmul), so the
    convolution itself runs on PyTorch's fast path and exports to ONNX as plain ops. The unconnected
    entries are constant zeros and receive no gradient.
    """

    def __init__(self, in_channels: int, table: tuple[tuple[int, ...], ...], kernel_size: int = 5) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, len(table), kernel_size
        self.table = tuple(tuple(row) for row in table)
        self.stride, self.padding, self.dilation, self.groups = 1, 0, 1, 1
        self.connections_per_output = tuple(len(row) for row in self.table)
        n_connected = sum(self.connections_per_output)
        self.weight = nn.Parameter(torch.empty(n_connected, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(self.out_channels))
        # placement[o * in + i, j] = 1 where stored kernel j is the kernel from input i to output o.
        placement = torch.zeros(self.out_channels * in_channels, n_connected)
        j = 0
        for o, row in enumerate(self.table):
            for i in row:
                placement[o * in_channels + i, j] = 1.0
                j += 1
        self.register_buffer("placement", placement, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(max(self.connections_per_output) * self.kernel_size**2)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense (out, in, k, k) kernel, zeros where Table I has no connection."""
        k = self.kernel_size
        flat = self.placement @ self.weight.reshape(self.weight.shape[0], k * k)
        return flat.reshape(self.out_channels, self.in_channels, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, connected={self.weight.shape[0]}"


# The output layer's fixed centres: stylised 7×12 images of the digits ("#" = +1, "." = -1), after the
# paper's Fig. 3 — drawn so that they are far apart in the 84-dim space (what matters for the RBF code).
RBF_DIGIT_BITMAPS: tuple[tuple[str, ...], ...] = (
    (  # 0
        ".......",
        "..###..",
        ".#...#.",
        "#.....#",
        "#.....#",
        "#.....#",
        "#.....#",
        "#.....#",
        ".#...#.",
        "..###..",
        ".......",
        ".......",
    ),
    (  # 1
        ".......",
        "...#...",
        "..##...",
        ".#.#...",
        "...#...",
        "...#...",
        "...#...",
        "...#...",
        "...#...",
        ".#####.",
        ".......",
        ".......",
    ),
    (  # 2
        ".......",
        ".#####.",
        "#.....#",
        "......#",
        ".....#.",
        "...##..",
        "..#....",
        ".#.....",
        "#......",
        "#######",
        ".......",
        ".......",
    ),
    (  # 3
        ".......",
        "#######",
        ".....#.",
        "....#..",
        "...###.",
        "......#",
        "......#",
        "......#",
        "#.....#",
        ".#####.",
        ".......",
        ".......",
    ),
    (  # 4
        ".......",
        "....#..",
        "...##..",
        "..#.#..",
        ".#..#..",
        "#...#..",
        "#######",
        "....#..",
        "....#..",
        "....#..",
        ".......",
        ".......",
    ),
    (  # 5
        ".......",
        "#######",
        "#......",
        "#......",
        "######.",
        "......#",
        "......#",
        "......#",
        "#.....#",
        ".#####.",
        ".......",
        ".......",
    ),
    (  # 6
        ".......",
        "...###.",
        "..#....",
        ".#.....",
        "#......",
        "######.",
        "#.....#",
        "#.....#",
        "#.....#",
        ".#####.",
        ".......",
        ".......",
    ),
    (  # 7
        ".......",
        "#######",
        "......#",
        ".....#.",
        "....#..",
        "...#...",
        "..#....",
        "..#....",
        "..#....",
        "..#....",
        ".......",
        ".......",
    ),
    (  # 8
        ".......",
        ".#####.",
        "#.....#",
        "#.....#",
        ".#####.",
        "#.....#",
        "#.....#",
        "#.....#",
        "#.....#",
        ".#####.",
        ".......",
        ".......",
    ),
    (  # 9
        ".......",
        ".#####.",
        "#.....#",
        "#.....#",
        "#.....#",
        ".######",
        "......#",
        ".....#.",
        "....#..",
        ".###...",
        ".......",
        ".......",
    ),
)


def _digit_codes(num_classes: int, features: int) -> torch.Tensor:
    """(num_classes, features) of ±1: the digit bitmaps when they fit, else fixed random codes."""
    if num_classes <= 10 and features == 84:
        rows = [[1.0 if ch == "#" else -1.0 for ch in "".join(bm)] for bm in RBF_DIGIT_BITMAPS]
        return torch.tensor(rows[:num_classes])
    g = torch.Generator().manual_seed(1998)  # fixed: the codes are part of the architecture
    return torch.randint(0, 2, (num_classes, features), generator=g, device="cpu").float() * 2 - 1


class RBFOutput(nn.Module):
    """Euclidean RBF output units: ``y_i = Σ_j (x_j − w_ij)²`` with fixed ±1 centres ``w``.

    Returns ``-y`` so that the result works as logits: argmax picks the nearest centre and
    ``F.cross_entropy(-y, target)`` trains it (the paper's MAP criterion, see ``lenet5_loss``).
    The centres are a non-trainable parameter: 840 fixed parameters for LeNet-5, 0 trainable.
    """

    def __init__(self, in_features: int = 84, num_classes: int = 10) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, num_classes
        self.centers = nn.Parameter(_digit_codes(num_classes, in_features), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ||x - w||² = ||x||² - 2 x·w + ||w||²: one matmul instead of an (N, classes, 84) difference tensor.
        sq = (x * x).sum(dim=1, keepdim=True) - 2.0 * x @ self.centers.t() + (self.centers**2).sum(dim=1)
        return -sq

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.out_features}, centres fixed"
