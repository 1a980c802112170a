"""VGG (Simonyan & Zisserman 2014, "Very deep convolutional networks for large-scale image recognition",
ICLR 2015), configurations A, A-LRN, B, C, D, E of the paper's Table 1 — one table, one class, and a small
builder per name (``vgg11`` … ``vgg19_bn``, as torchvision's ``vgg.py``); each builder's ``published`` entry
holds the parameter counts, MACs and the paper's Table 3 errors.

    config  name       config  name       config  name
    A       vgg11      A-LRN   vgg11_lrn  B       vgg13
    C       vgg16_c    D       vgg16      E       vgg19        (+ vgg11_bn … vgg19_bn: batch norm)

Input 3×224×224; every conv is 3×3, stride 1, padding 1 ('same'); five 2×2 max-pools halve the map
224 -> 112 -> 56 -> 28 -> 14 -> 7; then FC 512·7·7 -> 4096 -> 4096 -> 1000. VGG-16's receptive field is 212 at pool5, 196 at conv5_3. Names and layout follow torchvision (``features.N``,
``avgpool``, ``classifier.0/3/6``), so torchvision's ``vgg11 … vgg19_bn`` state dicts load unchanged.

Other input sizes (``input_size=(H, W)``), e.g. "VGG-A scaled to a 28×28 dataset":

- A 2×2 max-pool whose input is already smaller than 2×2 would empty the map; it becomes ``nn.Identity``
  (same index, so parameter names never shift). 28×28: 28 -> 14 -> 7 -> 3 -> 1, pool5 skipped.
- The first FC layer takes the final map as it is: ``512·h·w`` features (32×32: 512·1·1).
- ``avgpool`` is ``AdaptiveAvgPool2d`` to that final map: a no-op at the built size, and exactly
  torchvision's ``AdaptiveAvgPool2d((7, 7))`` at 224. A model built for one size still accepts others.
- ``width`` multiplies the conv channels, ``fc_features`` sets the hidden FC width (4096 in the paper).
"""

from __future__ import annotations

import torch
from torch import nn

from ..shapes import spatial_size
from .registry import Published, register_model

SIMONYAN_2014 = (
    "Simonyan & Zisserman 2014, Very deep convolutional networks for large-scale image recognition"
)

# Paper Table 1. An int is a 3×3 conv with that many maps; (c, k) a k×k conv; "M" a 2×2 max-pool;
# "LRN" local response normalisation (A-LRN, after the first conv's ReLU).
# fmt: off
CFGS: dict[str, list] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M", 512, 512, (512, 1), "M", 512, 512, (512, 1), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
# fmt: on


class VGG(nn.Module):
    """``features`` (conv/[BN]/ReLU … max-pool), ``avgpool``, ``classifier`` (FC-ReLU-Dropout ×2, FC)."""

    def __init__(
        self,
        cfg: list,
        num_classes: int = 1000,
        in_channels: int = 3,
        input_size=(224, 224),
        batch_norm: bool = False,
        width: float = 1.0,
        fc_features: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        h, w = spatial_size(input_size)
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                if h < 2 or w < 2:  # a 2×2 pool on a 1-pixel map would empty it: see the module docstring
                    layers.append(nn.Identity())
                else:
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                    h, w = h // 2, w // 2
            elif v == "LRN":  # AlexNet's settings (paper §2.1); PyTorch divides alpha by size
                layers.append(nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0))
            else:
                out, k = (v, 3) if isinstance(v, int) else v
                out = max(1, round(out * width))
                layers.append(nn.Conv2d(c, out, kernel_size=k, padding=k // 2))  # 'same': the map keeps h×w
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(nn.ReLU(inplace=True))
                c = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((h, w))  # (7, 7) at 224, like torchvision
        self.classifier = nn.Sequential(
            nn.Linear(c * h * w, fc_features),  # 25,088 -> 4096 at 224
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_features, fc_features),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_features, num_classes),
        )
        self.init_torchvision_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))  # (N, 512, 7, 7) at 224
        return self.classifier(torch.flatten(x, 1))  # (N, num_classes)

    @torch.no_grad()
    def init_torchvision_(self) -> None:
        """torchvision's (and the default here): He normal (fan_out) convs, N(0, 0.01) FCs, zero biases.
        The paper instead trained A from N(0, 10⁻²) and initialised deeper nets from it (§3.1)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    @torch.no_grad()
    def init_paper_(self) -> None:
        """Paper §3.1: weights from N(0, variance 10⁻²), biases zero (used to train net A from scratch; the
        paper notes Glorot init works without pre-training too)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.1)
                nn.init.zeros_(m.bias)

    def reset_classifier(self, num_classes: int) -> None:
        old = self.classifier[-1]
        self.classifier[-1] = nn.Linear(old.in_features, num_classes).to(old.weight.device)


def _vgg(config: str, batch_norm: bool = False, paper_init: bool = False, **kwargs) -> VGG:
    """VGG with Table 1's ``config``; ``kwargs`` are :class:`VGG`'s (num_classes, in_channels, input_size,
    width, fc_features, dropout), as torchvision's ``_vgg`` passes them on."""
    model = VGG(CFGS[config], batch_norm=batch_norm, **kwargs)
    if paper_init:
        model.init_paper_()
    return model


def _published(params: int, gmacs: float, error: str = "") -> Published:
    source = "torchvision (params, MACs)" + (", Simonyan & Zisserman 2014 Table 3 (error)" if error else "")
    return Published(source, params=params, gmacs=gmacs, error=error)


def _table3(top1: float, top5: float) -> str:
    return f"{top1}% top-1, {top5}% top-5 error (ILSVRC-2012 val, single scale, trained at 256)"


# Every builder takes VGG's keyword arguments (``width`` scales the conv channels, ``fc_features`` the hidden
# FC width) and ``paper_init``.
_VGG = dict(input_size=(3, 224, 224), family="vgg", paper=SIMONYAN_2014, num_classes=1000)


@register_model(**_VGG, published=_published(132_863_336, 7.609, _table3(29.6, 10.4)))
def vgg11(**kwargs) -> VGG:
    """VGG-11 (config A): 8 conv + 3 FC, 224×224."""
    return _vgg("A", **kwargs)


@register_model(**_VGG, published=_published(132_863_336, 7.609, _table3(29.7, 10.5)))
def vgg11_lrn(**kwargs) -> VGG:
    """VGG-11 with LRN after conv1 (config A-LRN; LRN has no parameters), 224×224."""
    return _vgg("A-LRN", **kwargs)


@register_model(**_VGG, published=_published(133_047_848, 11.308, _table3(28.7, 9.9)))
def vgg13(**kwargs) -> VGG:
    """VGG-13 (config B): 10 conv + 3 FC, 224×224."""
    return _vgg("B", **kwargs)


@register_model(
    **_VGG,
    published=Published(
        "Simonyan & Zisserman 2014: Table 1's config C (params, counted), Table 3 (error)",
        params=133_638_952,
        error=_table3(28.1, 9.4),
    ),
)
def vgg16_c(**kwargs) -> VGG:
    """VGG-16 config C: 1×1 convs last in blocks 3-5, 224×224."""
    return _vgg("C", **kwargs)


@register_model(**_VGG, published=_published(138_357_544, 15.47, _table3(27.0, 8.8)))
def vgg16(**kwargs) -> VGG:
    """VGG-16 (config D): 13 conv + 3 FC, 224×224."""
    return _vgg("D", **kwargs)


@register_model(**_VGG, published=_published(143_667_240, 19.632, _table3(27.3, 9.0)))
def vgg19(**kwargs) -> VGG:
    """VGG-19 (config E): 16 conv + 3 FC, 224×224."""
    return _vgg("E", **kwargs)


@register_model(**_VGG, published=_published(132_868_840, 7.609))
def vgg11_bn(**kwargs) -> VGG:
    """VGG-11 (A) with batch norm after every conv (torchvision's vgg11_bn), 224×224."""
    return _vgg("A", batch_norm=True, **kwargs)


@register_model(**_VGG, published=_published(133_053_736, 11.308))
def vgg13_bn(**kwargs) -> VGG:
    """VGG-13 (B) with batch norm after every conv (torchvision's vgg13_bn), 224×224."""
    return _vgg("B", batch_norm=True, **kwargs)


@register_model(**_VGG, published=_published(138_365_992, 15.47))
def vgg16_bn(**kwargs) -> VGG:
    """VGG-16 (D) with batch norm after every conv (torchvision's vgg16_bn), 224×224."""
    return _vgg("D", batch_norm=True, **kwargs)


@register_model(**_VGG, published=_published(143_678_248, 19.632))
def vgg19_bn(**kwargs) -> VGG:
    """VGG-19 (E) with batch norm after every conv (torchvision's vgg19_bn), 224×224."""
    return _vgg("E", batch_norm=True, **kwargs)
