"""Recommended settings per model: what ``cnnzoo train MODEL`` uses unless told otherwise.

Measured on Fashion-MNIST on this project's 2-core CPU (see docs/training.md); the larger families get
the settings of their papers, scaled to CIFAR-sized runs.
"""

from __future__ import annotations

__all__ = ["RECIPES", "recipe_for"]

# key: a model name or a family (the registry's ``family``); values are TrainConfig fields.
RECIPES: dict[str, dict] = {
    # LeNet-5 as trained today: 12 epochs of Nesterov SGD with one cycle reach ~91% on Fashion-MNIST
    # (91.12% and 91.18% with seeds 0 and 1; 15 epochs gave 91.19%, not worth 25% more time).
    "lenet5_modern": dict(epochs=12, batch_size=128, lr=0.05, optimizer="sgd", schedule="onecycle",
                          weight_decay=5e-4, crop_padding=0),
    # The 1998 network with its own MAP loss (eq. 9): 89.35% after 20 epochs. Cross-entropy on its RBF
    # logits diverged at lr 0.02 and reached only 88.86% at lr 0.005 (docs/training.md).
    "lenet5": dict(epochs=20, batch_size=128, lr=0.01, optimizer="sgd", schedule="onecycle",
                   weight_decay=0.0, crop_padding=0, loss="lenet5"),
    "lenet": dict(epochs=15, batch_size=128, lr=0.05, optimizer="sgd", schedule="onecycle", crop_padding=0),
    "alexnet": dict(epochs=30, batch_size=128, lr=0.01, optimizer="sgd", schedule="cosine", warmup_epochs=1,
                    weight_decay=5e-4),
    "vgg": dict(epochs=30, batch_size=128, lr=0.01, optimizer="sgd", schedule="cosine", warmup_epochs=1,
                weight_decay=5e-4),
    "resnet": dict(epochs=30, batch_size=128, lr=0.1, optimizer="sgd", schedule="cosine", warmup_epochs=1,
                   weight_decay=5e-4),
}  # fmt: skip


def recipe_for(model_name: str) -> dict:
    """The recipe of the model itself, else of its family, else {} (TrainConfig's defaults)."""
    if model_name in RECIPES:
        return dict(RECIPES[model_name])
    from ..models import get_model_info

    family = get_model_info(model_name).family
    return dict(RECIPES.get(family, {}))
