"""VGG (Simonyan & Zisserman 2014, "Very deep convolutional networks for large-scale image recognition",
ICLR 2015), configurations A, A-LRN, B, C, D, E of the paper's Table 1 — one table, one builder.

    config  name       params (224×224, 1000 classes)
    A       vgg11      132,863,336      A-LRN  vgg11_lrn  132,863,336 (LRN has no parameters)
    B       vgg13      133,047,848      C      vgg16_c    133,638,952 (1×1 convs in blocks 3-5)
    D       vgg16      138,357,544      E      vgg19      143,667,240

Input 3×224×224; every conv is 3×3, stride 1, padding 1 ('same'); five 2×2 max-pools halve the map
224 -> 112 -> 56 -> 28 -> 14 -> 7; then FC 512·7·7 -> 4096 -> 4096 -> 1000. VGG-16 at 224: 15.47 G MACs;
receptive field 212 at pool5, 196 at conv5_3. Names and layout follow torchvision (``features.N``,
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

from ..analysis.arithmetic import pair
from ..registry import register_model

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
        h, w = pair(input_size) if isinstance(input_size, int) else pair(tuple(input_size)[-2:])
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


def _register(name: str, config: str, batch_norm: bool, doc: str) -> None:
    """Define and register ``name`` as a plain builder function (keyword defaults visible to ``inspect``)."""

    def builder(
        num_classes: int = 1000,
        in_channels: int = 3,
        input_size=(224, 224),
        width: float = 1.0,
        fc_features: int = 4096,
        dropout: float = 0.5,
        paper_init: bool = False,
    ) -> VGG:
        model = VGG(
            CFGS[config], num_classes, in_channels, input_size, batch_norm, width, fc_features, dropout
        )
        if paper_init:
            model.init_paper_()
        return model

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    register_model(name, input_size=(3, 224, 224), family="vgg", paper=SIMONYAN_2014, num_classes=1000)(
        builder
    )
    globals()[name] = builder


# name, Table 1 column, batch norm, one-line description
for _name, _config, _bn, _doc in [
    ("vgg11", "A", False, "VGG-11 (config A): 8 conv + 3 FC, 224×224, 132,863,336 params."),
    ("vgg11_lrn", "A-LRN", False, "VGG-11 with LRN after conv1 (config A-LRN), 224×224, 132,863,336 params."),
    ("vgg13", "B", False, "VGG-13 (config B): 10 conv + 3 FC, 224×224, 133,047,848 params."),
    ("vgg16_c", "C", False, "VGG-16 config C: 1×1 convs last in blocks 3-5, 224×224, 133,638,952 params."),
    ("vgg16", "D", False, "VGG-16 (config D): 13 conv + 3 FC, 224×224, 138,357,544 params, 15.47 G MACs."),
    ("vgg19", "E", False, "VGG-19 (config E): 16 conv + 3 FC, 224×224, 143,667,240 params, 19.63 G MACs."),
    ("vgg11_bn", "A", True, "VGG-11 (A) with batch norm after every conv (torchvision's vgg11_bn), 224×224."),
    ("vgg13_bn", "B", True, "VGG-13 (B) with batch norm after every conv (torchvision's vgg13_bn), 224×224."),
    ("vgg16_bn", "D", True, "VGG-16 (D) with batch norm after every conv (torchvision's vgg16_bn), 224×224."),
    ("vgg19_bn", "E", True, "VGG-19 (E) with batch norm after every conv (torchvision's vgg19_bn), 224×224."),
]:
    _register(_name, _config, _bn, _doc)
