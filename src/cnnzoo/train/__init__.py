"""Training: ``fit`` / ``evaluate`` (Keras-like), and the reusable pieces behind them.

import cnnzoo
model = cnnzoo.create_model("lenet5_modern")
history = cnnzoo.fit(model, "fashion-mnist", epochs=15, out="runs/lenet")
print(history.test["accuracy"])

Modules: :mod:`.fit` (TrainConfig, fit, evaluate), :mod:`.loop` (one epoch, evaluation on tensors, batch
preparation), :mod:`.data` (subsets, splits), :mod:`.optim` (optimizers, schedules), :mod:`.augment`,
:mod:`.rundir` (the run directory's files), :mod:`.report` (progress), :mod:`.distributed` (DDP).
"""

from ..config import TrainConfig
from ..device import resolve_device, seed_everything
from .augment import fit_to_size, normalize, random_crop, random_hflip, to_float
from .fit import DivergedError, History, evaluate, fit
from .loop import evaluate_tensors, make_prepare, prepare_for, train_one_epoch
from .optim import lr_factor, make_optimizer, make_scheduler
from .rundir import RunDir

__all__ = [
    "DivergedError",
    "History",
    "RunDir",
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
    "prepare_for",
    "random_crop",
    "random_hflip",
    "resolve_device",
    "seed_everything",
    "to_float",
    "train_one_epoch",
]
