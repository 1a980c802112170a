"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep convolutional neural
networks", NIPS), in the three forms people mean by the name. One class, three tables:

    variant          input  convs (out channels)       towers / LRN
    alexnet_ng       227    96-256-384-384-256         one tower, no LRN (as Ng's course draws it)
    alexnet_paper    227    96-256-384-384-256         conv2/4/5 in 2 groups, LRN after conv1, conv2
    alexnet          224    64-192-384-256-256         torchvision's one-tower variant

Parameter counts are in each builder's ``published`` entry. Shapes at 227 (paper, course): 3×227×227
-conv1 11×11/4-> 96×55×55 -pool 3/2-> 27 -conv2 5×5 p2-> 256×27×27 -pool-> 13 -conv3,4,5 3×3 p1->
256×13×13 -pool-> 256×6×6 = 9216 -> 4096 -> 4096 -> 1000.

The paper's two GPUs become ``groups=2`` convolutions: conv2, conv4 and conv5 only see the maps of their own
GPU; conv3 and the FC layers cross between them. ``alexnet`` keeps torchvision's parameter names
(``features.0``, ``classifier.1`` …) so torchvision's weights load into it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ShapeError
from ..shapes import conv_output_size, min_input_for_chain, pool_output_size, spatial_size
from .registry import Published, register_model

KRIZHEVSKY_2012 = "Krizhevsky et al. 2012, ImageNet classification with deep convolutional neural networks"


@dataclass(frozen=True)
class AlexNetConfig:
    # (out_channels, kernel, stride, padding, groups, lrn_after, pool_after) per conv layer
    convs: tuple[tuple[int, int, int, int, int, bool, bool], ...]
    fc_features: int = 4096
    dropout_first: bool = False  # torchvision: Dropout before each hidden Linear; paper: after its ReLU


NG_COURSE = AlexNetConfig(
    convs=(
        (96, 11, 4, 0, 1, False, True),
        (256, 5, 1, 2, 1, False, True),
        (384, 3, 1, 1, 1, False, False),
        (384, 3, 1, 1, 1, False, False),
        (256, 3, 1, 1, 1, False, True),
    )
)
PAPER = AlexNetConfig(
    convs=(
        (96, 11, 4, 0, 1, True, True),
        (256, 5, 1, 2, 2, True, True),
        (384, 3, 1, 1, 1, False, False),
        (384, 3, 1, 1, 2, False, False),
        (256, 3, 1, 1, 2, False, True),
    )
)
TORCHVISION = AlexNetConfig(
    convs=(
        (64, 11, 4, 2, 1, False, True),
        (192, 5, 1, 2, 1, False, True),
        (384, 3, 1, 1, 1, False, False),
        (256, 3, 1, 1, 1, False, False),
        (256, 3, 1, 1, 1, False, True),
    ),
    dropout_first=True,
)

# Paper §3.3: b = a / (k + α·Σ a²)^β with n=5, α=1e-4, β=0.75, k=2. PyTorch divides α by n, so pass n·α.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0


class AlexNet(nn.Module):
    """``features`` (conv/ReLU/[LRN]/[max-pool 3×3, stride 2]), ``avgpool``, ``classifier`` — torchvision's
    layout. ``avgpool`` pins the final map to the size the first FC layer was built for (6×6 at 224/227),
    as torchvision's ``AdaptiveAvgPool2d((6, 6))`` does; it is a no-op at the built ``input_size``."""

    def __init__(
        self,
        cfg: AlexNetConfig,
        num_classes: int = 1000,
        in_channels: int = 3,
        input_size=(227, 227),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        h, w = spatial_size(input_size)
        layers: list[nn.Module] = []
        c = in_channels
        for out, k, s, p, groups, lrn, pool in cfg.convs:
            layers += [
                nn.Conv2d(c, out, kernel_size=k, stride=s, padding=p, groups=groups),
                nn.ReLU(inplace=True),
            ]
            h, w = conv_output_size(h, k, s, p), conv_output_size(w, k, s, p)
            if lrn:  # after the ReLU, before the pool (paper §3.3)
                layers.append(
                    nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_SIZE * LRN_ALPHA, beta=LRN_BETA, k=LRN_K)
                )
            if pool:  # overlapping pooling: 3×3 windows, stride 2 (paper §3.4)
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
                h, w = pool_output_size(h, 3, 2), pool_output_size(w, 3, 2)
            if h < 1 or w < 1:
                raise ShapeError(
                    f"input {input_size} is too small for AlexNet: the map collapses at features.{len(layers) - 1}"
                    f" ({type(layers[-1]).__name__}); use at least {_smallest_side(cfg)} pixels a side"
                )
            c = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((h, w))  # (N, 256, 6, 6) at 224/227
        f, flat = cfg.fc_features, c * h * w  # 9216 at 224/227
        if cfg.dropout_first:  # torchvision's order and indices: classifier.1/.4/.6 are the Linears
            head = [
                nn.Dropout(dropout),
                nn.Linear(flat, f),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(f, f),
                nn.ReLU(inplace=True),
                nn.Linear(f, num_classes),
            ]
        else:  # paper §4.2: dropout on the outputs of the first two FC layers
            head = [
                nn.Linear(flat, f),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(f, f),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(f, num_classes),
            ]
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))  # (N, 256, 6, 6)
        return self.classifier(torch.flatten(x, 1))  # (N, num_classes)

    @torch.no_grad()
    def init_paper_(self) -> None:
        """Paper §5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden FC layers (to give the
        ReLUs positive inputs early on), 0 in the others."""
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        linears = [m for m in self.classifier if isinstance(m, nn.Linear)]
        ones = {convs[1], convs[3], convs[4], linears[0], linears[1]}
        for m in convs + linears:
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.constant_(m.bias, 1.0 if m in ones else 0.0)

    def reset_classifier(self, num_classes: int) -> None:
        old = self.classifier[-1]
        self.classifier[-1] = nn.Linear(old.in_features, num_classes).to(old.weight.device)


def _smallest_side(cfg: AlexNetConfig) -> int:
    """The least input side whose last feature map is at least 1×1 (the arithmetic's inverse, layer by layer)."""
    chain = []
    for _, k, s, p, _, _, pool in cfg.convs:
        chain.append(dict(kernel=k, stride=s, padding=p))
        if pool:
            chain.append(dict(kernel=3, stride=2))
    return min_input_for_chain(chain)


def _build(cfg: AlexNetConfig, num_classes, in_channels, input_size, paper_init) -> AlexNet:
    model = AlexNet(cfg, num_classes, in_channels, input_size)
    if paper_init:
        model.init_paper_()
    return model


PAPER_ERROR = "37.5% top-1, 17.0% top-5 error (ILSVRC-2010 test)"


@register_model(
    input_size=(3, 227, 227),
    family="alexnet",
    paper=KRIZHEVSKY_2012,
    num_classes=1000,
    published=Published("Ng's course (counted from its layer sizes)", params=62_378_344),
)
def alexnet_ng(num_classes=1000, in_channels=3, input_size=(227, 227), paper_init=False) -> AlexNet:
    """AlexNet as Ng's course draws it: one tower 96-256-384-384-256, no LRN, 227×227."""
    return _build(NG_COURSE, num_classes, in_channels, input_size, paper_init)


@register_model(
    input_size=(3, 227, 227),
    family="alexnet",
    paper=KRIZHEVSKY_2012,
    num_classes=1000,
    published=Published("Krizhevsky et al. 2012 (counted from Fig. 2)", params=60_965_224, error=PAPER_ERROR),
)
def alexnet_paper(num_classes=1000, in_channels=3, input_size=(227, 227), paper_init=False) -> AlexNet:
    """AlexNet as published: two towers (groups=2 in conv2/4/5), LRN after conv1/conv2, 227×227."""
    return _build(PAPER, num_classes, in_channels, input_size, paper_init)


@register_model(
    input_size=(3, 224, 224),
    family="alexnet",
    paper=KRIZHEVSKY_2012,
    num_classes=1000,
    published=Published("torchvision", params=61_100_840, gmacs=0.714),
)
def alexnet(num_classes=1000, in_channels=3, input_size=(224, 224), paper_init=False) -> AlexNet:
    """torchvision's AlexNet (64-192-384-256-256, no LRN), 224×224, torchvision's parameter names."""
    return _build(TORCHVISION, num_classes, in_channels, input_size, paper_init)
