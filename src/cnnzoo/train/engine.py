"""Deprecated: the trainer's old single module. ``fit``/``evaluate`` live in :mod:`cnnzoo.train.fit`, the
reusable pieces in :mod:`cnnzoo.train.loop`, the data handling in :mod:`cnnzoo.train.data`; import them from
:mod:`cnnzoo.train`."""

from ..device import resolve_device
from .fit import DivergedError, History, TrainConfig, evaluate, fit
from .loop import evaluate_tensors, make_prepare, train_one_epoch

__all__ = [
    "DivergedError",
    "History",
    "TrainConfig",
    "evaluate",
    "evaluate_tensors",
    "fit",
    "make_prepare",
    "resolve_device",
    "train_one_epoch",
]
