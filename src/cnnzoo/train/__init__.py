"""Training: ``fit`` / ``evaluate`` / ``predict`` (Keras-like), and the reusable pieces behind them.

import cnnzoo
model = cnnzoo.create_model("lenet5_modern")
history = cnnzoo.fit(model, "fashion-mnist", epochs=15, out="runs/lenet")
print(history.test["accuracy"])
"""

from .augment import fit_to_size, normalize, random_crop, random_hflip, to_float
from .engine import (
    DivergedError,
    History,
    TrainConfig,
    evaluate,
    evaluate_tensors,
    fit,
    make_prepare,
    predict,
    resolve_device,
    train_one_epoch,
)
from .optim import lr_factor, make_optimizer, make_scheduler

__all__ = [
    "DivergedError",
    "History",
    "TrainConfig",
    "evaluate",
    "evaluate_tensors",
    "fit",
    "fit_to_size",
    "lr_factor",
    "make_optimizer",
    "make_prepare",
    "make_scheduler",
    "normalize",
    "predict",
    "random_crop",
    "random_hflip",
    "resolve_device",
    "to_float",
    "train_one_epoch",
]
