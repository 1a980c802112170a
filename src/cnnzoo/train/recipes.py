"""Recommended settings per model: what ``cnnzoo train MODEL`` uses unless told otherwise.

Measured on Fashion-MNIST on this project's 2-core CPU (see docs/training.md); the larger families get
the settings of their papers, scaled to CIFAR-sized runs. ``cnnzoo train MODEL --recipe NAME`` picks a named
recipe instead: ``paper`` trains LeNet-5 as LeCun et al. 1998 did (:data:`NAMED_RECIPES`).
"""

from __future__ import annotations

from ..errors import CnnzooError

__all__ = [
    "RECIPES",
    "NAMED_RECIPES",
    "RECIPE_NAMES",
    "recipe_for",
    "normalization_stats",
    "LENET1998_MEAN",
    "LENET1998_STD",
]

# LeNet-5 in 6 epochs: Muon (lr 0.01) for the hidden layers and Nesterov SGD (lr 0.1, momentum 0.95)
# for the output layer and the biases, a 10% warmup then a straight line to 0, batch 128 on all 60,000
# training images, random mirroring (where the dataset allows it: not digits) with label smoothing 0.2, and
# the test-time flip (cnnzoo.tta). On Fashion-MNIST over 15 runs (seeds 0-9 on one thread, 0-4 on two) all
# >= 91.8%: docs/training.md. Batch 128 rather than 64 (the same accuracy within the noise): Muon's matrix
# products are per step, so twice the images share them. An 8-epoch SGD recipe gave 91.24 ± 0.09%, a
# 12-epoch one-cycle recipe 91.00 ± 0.16% (3/5 runs >= 91%). benchmarks/recipe_search.py.
_MODERN = dict(
    epochs=6,
    batch_size=128,
    lr=0.1,
    optimizer="muon",
    muon_lr=0.01,
    momentum=0.95,
    schedule="linear",
    weight_decay=5e-4,
    crop_padding=0,
    hflip=None,
    label_smoothing=0.2,
    test_flip=True,
    validation_split=0.0,
)

# the families' default: 30 epochs of SGD with a cosine schedule after a one-epoch warmup
_SGD_30 = dict(
    epochs=30, batch_size=128, optimizer="sgd", schedule="cosine", warmup_epochs=1, weight_decay=5e-4
)

# key: a model name or a family (the registry's ``family``); values are TrainConfig fields.
RECIPES: dict[str, dict] = {
    "lenet5_modern": _MODERN,
    # The 1998 network with its own MAP loss (eq. 9), lenet5_modern's lessons (all 60,000 images, no flips,
    # the linear decay) at its own batch and peak: 89.99 ± 0.16% in 10 epochs over seeds 0-4, where 20 epochs of
    # one-cycle with flips and a validation split gave 89.4%; 6 epochs already give
    # 89.54%. At batch 64 or a peak of 0.02 the MAP loss was unstable. Cross-entropy on its RBF logits
    # diverged at lr 0.02 and reached only 88.86% at lr 0.005 (benchmarks/recipe_search.py, docs/training.md).
    "lenet5": dict(
        epochs=10,
        batch_size=128,
        lr=0.01,
        optimizer="sgd",
        schedule="linear",
        weight_decay=0.0,
        crop_padding=0,
        hflip=False,
        loss="lenet5",
        validation_split=0.0,
    ),
    "lenet": dict(epochs=15, batch_size=128, lr=0.05, optimizer="sgd", schedule="onecycle", crop_padding=0),
    "alexnet": _SGD_30 | dict(lr=0.01),
    "vgg": _SGD_30 | dict(lr=0.01),
    "resnet": _SGD_30 | dict(lr=0.1),
    # Any other net (a layer string, the user's file, torchvision:/timm:): lenet5_modern's recipe, which asks
    # nothing of the architecture (Muon for the hidden layers, SGD for the last one). Seed 004's net
    # 1x28x28-32C3-MP2-64C3-MP2-128C3-MP2-64N-10N on Fashion-MNIST: 91.64 ± 0.09% over seeds 0-2 in 6 epochs
    # (all >= 91.5%; docs/any-network.md), where fit with Adam gets 85.7%.
    "layer-string": _MODERN,
}


# Named recipes beside the default one: {recipe name: {model name: TrainConfig fields}}.
NAMED_RECIPES: dict[str, dict[str, dict]] = {
    "fast": {
        # The ResNet family's recipe in 5 epochs instead of 30, with lenet5_modern's lessons: all 60,000 images,
        # label smoothing 0.1, no flips and no shifts. On Fashion-MNIST at 32×32: 93.46 ± 0.07% over seeds 0-4
        # (all >= 93.37%), where the family recipe reached 93% after 19 epochs and 94.23% after 30 (seed 0), and
        # cut to 5 epochs gave 92.58 ± 0.12%. Short runs only: augmentation pays in long ones (CIFAR-10).
        "resnet20": RECIPES["resnet"]
        | dict(epochs=5, validation_split=0.0, label_smoothing=0.1, hflip=False, crop_padding=0),
        # VGG-11 at 32×32 (--input 1x32x32; no batch norm, as in the paper) in 3 epochs: Muon (0.02) for the
        # convolutions, Nesterov SGD (0.01, the family's peak) for the fully connected layers and biases, a 10%
        # warmup then linear to 0, with resnet20's lessons. On Fashion-MNIST: 93.19 ± 0.16% over seeds 0-4 (4/5
        # >= 93%, min 92.93%) in 1,282 s on one thread, where 5 epochs of the family's SGD gave 89.47 ± 0.17% in
        # 1,457 s (Muon's Newton-Schulz costs about half the rest of a step). Muon for the FC layers too would
        # orthogonalise the 4096×4096 matrix: ~2 TFLOP a step.
        "vgg11": RECIPES["vgg"]
        | dict(
            epochs=3,
            optimizer="muon",
            muon_layers="conv",
            muon_lr=0.02,
            momentum=0.95,
            schedule="linear",
            warmup_epochs=0.0,
            validation_split=0.0,
            label_smoothing=0.1,
            hflip=False,
            crop_padding=0,
        ),
    },
    # LeCun et al. 1998 (§II.A, §III.C, Appendix C): inputs scaled to -0.1 (background) .. 1.175 (ink), the
    # MAP loss (eq. 9), stochastic diagonal Levenberg-Marquardt with μ = 0.02 and h re-estimated on 500
    # patterns before each pass, the paper's η per pass, 20 passes over all 60,000 training images, no
    # distortions, no weight decay. Differences (docs/training.md, "LeNet-5 as in 1998"): batches of 32, not
    # one pattern at a time, and a first-pass η of 0.0002 on the batch mean, not 0.0005 per pattern: the
    # paper's η at batch 1, and η × 32 at batch 32, collapsed to one class in the first pass here (our
    # curvature estimate is smaller than the paper's at the start, so the steps are larger).
    "paper": {
        "lenet5": dict(
            epochs=20,
            batch_size=32,
            lr=2e-4,
            optimizer="sdlm",
            schedule="lenet1998",
            warmup_epochs=0.0,
            weight_decay=0.0,
            crop_padding=0,
            hflip=False,
            loss="lenet5",
            normalization="lenet1998",
            validation_split=0.0,
        ),
    },
}
RECIPE_NAMES = ("default", *NAMED_RECIPES)


def recipe_for(model_name: str, recipe: str = "default") -> dict:
    """The named ``recipe`` for the model; ``default``: the recipe of the model itself, else of its family,
    else {} (TrainConfig's defaults)."""
    if recipe != "default":
        models = NAMED_RECIPES.get(recipe)
        if models is None:
            raise CnnzooError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPE_NAMES)}")
        if model_name not in models:
            raise CnnzooError(
                f"no {recipe!r} recipe for {model_name}: it exists for {', '.join(models)} (or use --recipe default)"
            )
        return dict(models[model_name])
    if model_name in RECIPES:
        return dict(RECIPES[model_name])
    from ..models import get_model_info
    from ..models.source import model_source

    if model_source(model_name).kind != "zoo":
        return dict(RECIPES["layer-string"])
    family = get_model_info(model_name).family
    return dict(RECIPES.get(family, {}))


# §II.A: "the background level (white) corresponds to a value of -0.1 and the foreground (black) corresponds
# to 1.175". In preprocess's (x - mean) / std on x in 0..1 with ink = 1 (cnnzoo's datasets are light on
# dark): -mean/std = -0.1 and (1 - mean)/std = 1.175 give std = 1/1.275 = 200/255 and mean = 0.1·std = 20/255,
# i.e. (pixel - 20) / 200 on the 0..255 pixel values.
LENET1998_MEAN = 20 / 255
LENET1998_STD = 200 / 255


def normalization_stats(
    normalization: str, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) a model's card gets: the dataset's own ``mean``/``std`` (``dataset``) or the 1998
    paper's scaling on every channel (``lenet1998``)."""
    if normalization == "dataset":
        return tuple(mean), tuple(std)
    if normalization == "lenet1998":
        return (LENET1998_MEAN,) * len(mean), (LENET1998_STD,) * len(std)
    raise CnnzooError(f"unknown normalization {normalization!r}; use 'dataset' or 'lenet1998'")
