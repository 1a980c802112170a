"""Golden output of the analyzer: ``python tests/golden_analyzer.py OUT.json`` writes ``summary(...).to_dict()``
for every zoo model at its default input, 16 torchvision models and the ShapeError messages of a few
too-small inputs, as sorted JSON. A refactor of the analyzer must leave this file byte-identical.
(Not a pytest module: it is run by hand before and after a change and the two files compared.)"""

from __future__ import annotations

import json
import sys
import warnings

import torch
import torchvision

import cnnzoo
from cnnzoo.errors import CnnzooError

TORCHVISION = (
    ("vgg11", 224),
    ("vgg16", 224),
    ("vgg19_bn", 224),
    ("alexnet", 224),
    ("resnet18", 224),
    ("resnet50", 224),
    ("resnet152", 224),
    ("densenet121", 224),
    ("inception_v3", 299),
    ("mobilenet_v2", 224),
    ("squeezenet1_0", 224),
    ("googlenet", 224),
    ("convnext_tiny", 224),
    ("swin_t", 224),
    ("vit_b_16", 224),
    ("efficientnet_b0", 224),
)
TOO_SMALL = (
    ("lenet5", "1x8x8"),
    ("vgg16", "3x16x16"),
    ("alexnet", "3x32x32"),
    ("resnet18", "3x1x1"),
    ("lenet_d2l", "1x4x4"),
    ("keras_mnist_cnn", "1x10x10"),
    ("lenet5", "3x32x32"),
)


def _error(fn) -> str:
    try:
        fn()
    except CnnzooError as e:
        return f"{type(e).__name__}: {e}"
    return "no error"


def main(path: str) -> None:
    warnings.filterwarnings("ignore")
    out: dict = {"zoo": {}, "torchvision": {}, "errors": {}, "fully_convolutional": {}}
    for name in cnnzoo.list_models():
        out["zoo"][name] = cnnzoo.summary(name).to_dict()
    for name, side in TORCHVISION:
        kwargs = {"aux_logits": False, "init_weights": False} if name in ("inception_v3", "googlenet") else {}
        with torch.device("meta"):
            model = getattr(torchvision.models, name)(**kwargs).eval()
        out["torchvision"][name] = cnnzoo.summary(model, (3, side, side)).to_dict()
    for name, size in TOO_SMALL:
        out["errors"][f"{name} {size}"] = _error(lambda n=name, s=size: cnnzoo.summary(n, s))
    # the builders' and the fully convolutional form's own too-small messages
    for name, side in (("alexnet_ng", 50), ("alexnet", 40), ("lenet_d2l", 4), ("keras_three_conv", 6)):
        out["errors"][f"create_model {name} {side}"] = _error(
            lambda n=name, s=side: cnnzoo.create_model(n, input_size=s)
        )
    with torch.device("meta"):
        vgg_fc = cnnzoo.to_fully_convolutional(cnnzoo.create_model("vgg16"))
        lenet_fc = cnnzoo.to_fully_convolutional(cnnzoo.create_model("lenet5"))
    out["errors"]["score_map_size vgg16 20"] = _error(lambda: cnnzoo.score_map_size(vgg_fc, (3, 20, 20)))
    out["errors"]["score_map_size lenet5 1x20x40"] = _error(
        lambda: cnnzoo.score_map_size(lenet_fc, (1, 20, 40))
    )
    # the fully convolutional forms, including an input larger than the one the model was built for
    for label, model, size in (
        ("vgg16", vgg_fc, None),
        ("lenet5", lenet_fc, None),
        ("lenet5 64", lenet_fc, "1x64x64"),
    ):
        try:
            out["fully_convolutional"][label] = cnnzoo.summary(model, size).to_dict()
        except CnnzooError as e:
            out["fully_convolutional"][label] = f"{type(e).__name__}: {e}"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, sort_keys=True, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
