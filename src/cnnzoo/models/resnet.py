"""ResNet (He, Zhang, Ren & Sun 2015, "Deep residual learning for image recognition", CVPR 2016) and the
paper's plain (no-shortcut) baselines. Each variant is one line: a block type and blocks per stage.

ImageNet (paper Table 1), 3×224×224: conv1 7×7/2 -> 64×112×112, max-pool 3×3/2 -> 56×56, four stages
(64, 128, 256, 512 planes; stages 2-4 halve the map: 56 -> 28 -> 14 -> 7), global average pool, FC 1000.
Each variant is one config (:data:`CONFIGS`) and one small builder; its ``published`` entry holds the
parameter count, MACs and the paper's error.

    resnet18  [2, 2, 2, 2] basic       resnet34  [3, 4, 6, 3] basic
    resnet50  [3, 4, 6, 3] bottleneck  resnet101 [3, 4, 23, 3] bottleneck  resnet152 [3, 8, 36, 3] bottleneck

Bottleneck stride: torchvision's "v1.5" (the default here) strides the 3×3 conv; ``stride_in_1x1=True`` puts
it on the first 1×1 as the paper (and Caffe) did — same parameters, fewer MACs (the paper's Table 1 "FLOPs":
3.8, 7.6, 11.3 G for ResNet-50/101/152), slightly lower accuracy.
Projection shortcuts (option B, 1×1 conv + BN) where the shape changes, as torchvision. Parameter names follow
torchvision (``conv1``, ``layer3.4.bn2``, ``layer2.0.downsample.0`` …), so its state dicts load unchanged.

CIFAR-10 (paper §4.2), 3×32×32: conv 3×3 16 -> three stages of n basic blocks (16, 32, 64 planes; maps
32 -> 16 -> 8), global average pool, FC 10: 6n+2 weighted layers (resnet20, 32, 44, 56, 110: n = 3, 5, 7,
9, 18). Shortcuts are option A by default (identity; where the shape changes, stride-2 subsampling and
zero-padded new channels: no parameters).

Plain nets (``plain20 … plain110``, ``plain18``, ``plain34``) are the same stacks without any shortcut
(so the ImageNet ones also lose the projection parameters). Initialisation: He et al. 2015 (kaiming normal,
fan_out, for ReLU), as both the paper and torchvision use; BN weight 1, bias 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CnnzooError
from .registry import Published, register_model

HE_2015 = "He et al. 2015, Deep residual learning for image recognition"


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: identity with stride-``s`` subsampling; ``extra`` new channels are zeros (no parameters).

    (N, C, H, W) -> (N, C + extra, ceil(H/s), ceil(W/s)). The new channels go last."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride, self.extra_channels = stride, extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))  # pad (W, H, C) dims: zeros after the channels

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


def _shortcut(kind: str, in_planes: int, out_planes: int, stride: int) -> nn.Module | None:
    """None where the block's input already has the output's shape (the identity)."""
    if stride == 1 and in_planes == out_planes:
        return None
    if kind == "A":
        return ZeroPadShortcut(stride, out_planes - in_planes)
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))  # option B


class BasicBlock(nn.Module):
    """Two 3×3 convs: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``. (N, in, H, W) -> (N, planes, H/s, W/s)."""

    cnnzoo_block = True  # the analyzer lists blocks by this attribute
    expansion = 1
    residual = True

    def __init__(
        self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "B", stride_in_1x1: bool = False
    ) -> None:
        super().__init__()  # stride_in_1x1 only matters for Bottleneck; accepted so blocks are interchangeable
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(shortcut, in_planes, planes, stride) if self.residual else None
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class PlainBlock(BasicBlock):
    """A :class:`BasicBlock` without the shortcut: the paper's plain baseline (Fig. 3, middle)."""

    residual = False


class Bottleneck(nn.Module):
    """1×1 reduce -> 3×3 -> 1×1 expand (×4), plus the shortcut. (N, in, H, W) -> (N, 4·planes, H/s, W/s)."""

    cnnzoo_block = True
    expansion = 4
    residual = True

    def __init__(
        self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "B", stride_in_1x1: bool = False
    ) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)  # paper v1 vs torchvision v1.5
        self.conv1 = conv1x1(in_planes, planes, s1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_planes)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(shortcut, in_planes, out_planes, stride)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


BLOCKS = {"basic": BasicBlock, "plain": PlainBlock, "bottleneck": Bottleneck}


@dataclass(frozen=True)
class ResNetConfig:
    block: str  # "basic" | "plain" | "bottleneck"
    layers: tuple[int, ...]  # blocks per stage
    widths: tuple[int, ...] = (64, 128, 256, 512)  # planes per stage
    stem: str = "imagenet"  # "imagenet": 7×7/2 conv + 3×3/2 max-pool; "cifar": 3×3 conv, no pool


class ResNet(nn.Module):
    """Stem, ``layer1 … layerK`` (the first block of each later stage halves the map), avgpool, fc."""

    def __init__(
        self,
        cfg: ResNetConfig,
        num_classes: int = 1000,
        in_channels: int = 3,
        shortcut: str = "B",
        stride_in_1x1: bool = False,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if shortcut not in ("A", "B"):
            raise CnnzooError(
                f"shortcut must be 'A' (zero-padded identity) or 'B' (projection), not {shortcut!r}"
            )
        block = BLOCKS[cfg.block]
        stem_width = cfg.widths[0]
        if cfg.stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = conv3x3(in_channels, stem_width)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1) if cfg.stem == "imagenet" else nn.Identity()
        in_planes = stem_width
        for i, (n, planes) in enumerate(zip(cfg.layers, cfg.widths, strict=True), start=1):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 1 and j == 0) else 1
                blocks.append(
                    block(in_planes, planes, stride, shortcut=shortcut, stride_in_1x1=stride_in_1x1)
                )
                in_planes = planes * block.expansion
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.num_stages = len(cfg.layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_planes, num_classes)
        self.init_paper_(zero_init_residual)

    @torch.no_grad()
    def init_paper_(self, zero_init_residual: bool = False) -> None:
        """He et al. 2015 ("Delving deep into rectifiers"): N(0, 2/fan_out) convs; BN γ=1, β=0.
        ``zero_init_residual`` zeroes each block's last BN γ (Goyal et al. 2017), as torchvision offers."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)) and m.residual:
                    nn.init.zeros_((m.bn3 if isinstance(m, Bottleneck) else m.bn2).weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ImageNet: (N, 64, 56, 56); CIFAR: (N, 16, 32, 32)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)  # ImageNet: ... (N, 2048 or 512, 7, 7); CIFAR: (N, 64, 8, 8)
        return self.fc(torch.flatten(self.avgpool(x), 1))  # (N, num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.fc.in_features, num_classes).to(self.fc.weight.device)


_CIFAR = (16, 32, 64)
CONFIGS = {
    "resnet18": ResNetConfig("basic", (2, 2, 2, 2)),
    "resnet34": ResNetConfig("basic", (3, 4, 6, 3)),
    "resnet50": ResNetConfig("bottleneck", (3, 4, 6, 3)),
    "resnet101": ResNetConfig("bottleneck", (3, 4, 23, 3)),
    "resnet152": ResNetConfig("bottleneck", (3, 8, 36, 3)),
    "plain18": ResNetConfig("plain", (2, 2, 2, 2)),
    "plain34": ResNetConfig("plain", (3, 4, 6, 3)),
    "resnet20": ResNetConfig("basic", (3, 3, 3), _CIFAR, "cifar"),
    "resnet32": ResNetConfig("basic", (5, 5, 5), _CIFAR, "cifar"),
    "resnet44": ResNetConfig("basic", (7, 7, 7), _CIFAR, "cifar"),
    "resnet56": ResNetConfig("basic", (9, 9, 9), _CIFAR, "cifar"),
    "resnet110": ResNetConfig("basic", (18, 18, 18), _CIFAR, "cifar"),
    "plain20": ResNetConfig("plain", (3, 3, 3), _CIFAR, "cifar"),
    "plain32": ResNetConfig("plain", (5, 5, 5), _CIFAR, "cifar"),
    "plain44": ResNetConfig("plain", (7, 7, 7), _CIFAR, "cifar"),
    "plain56": ResNetConfig("plain", (9, 9, 9), _CIFAR, "cifar"),
    "plain110": ResNetConfig("plain", (18, 18, 18), _CIFAR, "cifar"),
}
_IMAGENET = dict(input_size=(3, 224, 224), paper=HE_2015, num_classes=1000)
_CIFAR10 = dict(input_size=(3, 32, 32), paper=HE_2015, num_classes=10)


def _resnet(name: str, input_size=None, **kwargs) -> ResNet:
    """The ResNet of ``CONFIGS[name]``; ``kwargs`` are :class:`ResNet`'s. The CIFAR nets default to 10
    classes and option-A shortcuts (He et al. 2015, §4.2). The head is global-average-pooled, so the network
    does not depend on the input size: ``input_size`` (which ``create_model`` records on the card) builds
    nothing."""
    cfg = CONFIGS[name]
    defaults = {"num_classes": 10, "shortcut": "A"} if cfg.stem == "cifar" else {}
    return ResNet(cfg, **(defaults | kwargs))


def _imagenet(params: int, gmacs: float) -> Published:
    return Published("torchvision (v1.5)", params=params, gmacs=gmacs)


def _cifar(params: int, error: float) -> Published:
    return Published("He et al. 2015, Table 6", params=params, error=f"{error}% test error on CIFAR-10")


@register_model(**_IMAGENET, family="resnet", published=_imagenet(11_689_512, 1.814))
def resnet18(**kwargs) -> ResNet:
    """ResNet-18 (ImageNet, 224×224)."""
    return _resnet("resnet18", **kwargs)


@register_model(**_IMAGENET, family="resnet", published=_imagenet(21_797_672, 3.664))
def resnet34(**kwargs) -> ResNet:
    """ResNet-34 (ImageNet, 224×224)."""
    return _resnet("resnet34", **kwargs)


@register_model(**_IMAGENET, family="resnet", published=_imagenet(25_557_032, 4.089))
def resnet50(**kwargs) -> ResNet:
    """ResNet-50 (ImageNet, 224×224, v1.5)."""
    return _resnet("resnet50", **kwargs)


@register_model(**_IMAGENET, family="resnet", published=_imagenet(44_549_160, 7.801))
def resnet101(**kwargs) -> ResNet:
    """ResNet-101 (ImageNet, 224×224, v1.5)."""
    return _resnet("resnet101", **kwargs)


@register_model(**_IMAGENET, family="resnet", published=_imagenet(60_192_808, 11.514))
def resnet152(**kwargs) -> ResNet:
    """ResNet-152 (ImageNet, 224×224, v1.5)."""
    return _resnet("resnet152", **kwargs)


@register_model(**_IMAGENET, family="plain")
def plain18(**kwargs) -> ResNet:
    """Plain-18 (ImageNet, 224×224): ResNet-18 without shortcuts (paper Fig. 4, left)."""
    return _resnet("plain18", **kwargs)


@register_model(**_IMAGENET, family="plain")
def plain34(**kwargs) -> ResNet:
    """Plain-34 (ImageNet, 224×224): ResNet-34 without shortcuts (paper Fig. 3, middle)."""
    return _resnet("plain34", **kwargs)


@register_model(**_CIFAR10, family="resnet", published=_cifar(269_722, 8.75))
def resnet20(**kwargs) -> ResNet:
    """ResNet-20 (CIFAR-10, 32×32, n=3, option A)."""
    return _resnet("resnet20", **kwargs)


@register_model(**_CIFAR10, family="resnet", published=_cifar(464_154, 7.51))
def resnet32(**kwargs) -> ResNet:
    """ResNet-32 (CIFAR-10, 32×32, n=5, option A)."""
    return _resnet("resnet32", **kwargs)


@register_model(**_CIFAR10, family="resnet", published=_cifar(658_586, 7.17))
def resnet44(**kwargs) -> ResNet:
    """ResNet-44 (CIFAR-10, 32×32, n=7, option A)."""
    return _resnet("resnet44", **kwargs)


@register_model(**_CIFAR10, family="resnet", published=_cifar(853_018, 6.97))
def resnet56(**kwargs) -> ResNet:
    """ResNet-56 (CIFAR-10, 32×32, n=9, option A)."""
    return _resnet("resnet56", **kwargs)


@register_model(**_CIFAR10, family="resnet", published=_cifar(1_727_962, 6.43))
def resnet110(**kwargs) -> ResNet:
    """ResNet-110 (CIFAR-10, 32×32, n=18, option A)."""
    return _resnet("resnet110", **kwargs)


@register_model(**_CIFAR10, family="plain")
def plain20(**kwargs) -> ResNet:
    """Plain-20 (CIFAR-10, 32×32): ResNet-20 without shortcuts."""
    return _resnet("plain20", **kwargs)


@register_model(**_CIFAR10, family="plain")
def plain32(**kwargs) -> ResNet:
    """Plain-32 (CIFAR-10, 32×32): ResNet-32 without shortcuts."""
    return _resnet("plain32", **kwargs)


@register_model(**_CIFAR10, family="plain")
def plain44(**kwargs) -> ResNet:
    """Plain-44 (CIFAR-10, 32×32): ResNet-44 without shortcuts."""
    return _resnet("plain44", **kwargs)


@register_model(**_CIFAR10, family="plain")
def plain56(**kwargs) -> ResNet:
    """Plain-56 (CIFAR-10, 32×32): ResNet-56 without shortcuts (worse than plain-20)."""
    return _resnet("plain56", **kwargs)


@register_model(**_CIFAR10, family="plain")
def plain110(**kwargs) -> ResNet:
    """Plain-110 (CIFAR-10, 32×32): ResNet-110 without shortcuts."""
    return _resnet("plain110", **kwargs)
