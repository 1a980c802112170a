"""fit's callbacks and metrics, with Keras's names and hooks.

A callback is any object with some of ``on_train_begin(logs)``, ``on_epoch_begin(epoch, logs)``,
``on_batch_begin(batch, logs)``, ``on_batch_end(batch, logs)``, ``on_epoch_end(epoch, logs)`` and
``on_train_end(logs)`` (:class:`Callback` has them all, doing nothing); fit sets its ``model`` and
``params`` (``epochs``, ``steps``) first. Setting ``stop_training = True`` on a callback ends the run after
the current epoch, whose checkpoint is kept, so ``resume=True`` continues it. Epochs are counted from 0, as
in Keras; ``logs`` at an epoch's end is its record (``loss``, ``accuracy``, ``val_loss``, each metric...).

A metric is a callable ``metric(logits, labels) -> number`` (torch's argument order, as torchmetrics has it;
averaged over an epoch's images) or a torchmetrics ``Metric`` (``update``/``compute``/``reset``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from ..errors import CnnzooError

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "CallbackList", "Metrics", "metric_name"]

_HOOKS = (
    "on_train_begin",
    "on_epoch_begin",
    "on_batch_begin",
    "on_batch_end",
    "on_epoch_end",
    "on_train_end",
)


class Callback:
    """Keras's ``keras.callbacks.Callback``: override the hooks you need."""

    model = None
    params: dict = {}
    stop_training = False

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_end(self, logs=None): ...


def _better(monitor: str, mode: str) -> Callable[[float, float], bool]:
    if mode not in ("auto", "min", "max"):
        raise CnnzooError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        mode = "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
    return (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs (Keras's
    arguments). ``restore_best_weights``: the model ends with the best epoch's weights."""

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ):
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.restore_best_weights = restore_best_weights
        self._better = _better(monitor, mode)
        self._sign = -1 if self._better(0.0, 1.0) else 1  # min: improvements are below best - min_delta
        self.best, self.wait, self.stopped_epoch, self.best_weights = None, 0, None, None

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.stopped_epoch, self.best_weights = None, 0, None, None
        self.stop_training = False

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(logs, self.monitor)
        if self.best is None or self._better(value + self._sign * -self.min_delta, self.best):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch, self.stop_training = epoch, True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch is not None:
            self.model.load_state_dict(self.best_weights)


class ModelCheckpoint(Callback):
    """Keras's ModelCheckpoint, as a cnnzoo run directory: ``filepath`` gets model.safetensors and
    checkpoint.json (``cnnzoo.load_checkpoint(filepath)``, ``cnnzoo predict``); with ``save_best_only``
    only when ``monitor`` improved."""

    def __init__(
        self,
        filepath: str | Path,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
    ):
        self.filepath, self.monitor, self.save_best_only = Path(filepath), monitor, save_best_only
        self._better = _better(monitor, mode)
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        from .. import checkpoint as ckpt

        value = _monitored(logs, self.monitor) if self.save_best_only else None
        if self.save_best_only and self.best is not None and not self._better(value, self.best):
            return
        self.best = value
        card = self.params.get("card")
        metrics = {k: v for k, v in (logs or {}).items() if k != "epoch" and isinstance(v, (int, float))}
        meta = ckpt.CheckpointMeta(**card.to_dict(), epoch=epoch + 1, metrics=metrics)
        ckpt.save_checkpoint(self.filepath, self.model, meta)


def _monitored(logs, monitor: str) -> float:
    if not logs or monitor not in logs:
        have = ", ".join(k for k in (logs or {}) if k != "epoch")
        raise CnnzooError(f"the callback monitors {monitor!r}, which the run does not have (it has: {have})")
    return float(logs[monitor])


class CallbackList:
    """The user's callbacks, called in order; ``stop`` says whether one asked to stop."""

    def __init__(self, callbacks: Iterable | None, model, params: dict):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not any(callable(getattr(cb, h, None)) for h in _HOOKS):
                raise CnnzooError(
                    f"{type(cb).__name__} is not a callback: it has none of {', '.join(_HOOKS)}"
                )
            if hasattr(cb, "set_model"):
                cb.set_model(model)
            else:
                cb.model = model
            if hasattr(cb, "set_params"):
                cb.set_params(params)
        self.wants_batches = any(
            getattr(type(cb), h, None) not in (None, getattr(Callback, h))
            for cb in self.callbacks
            for h in ("on_batch_begin", "on_batch_end")
        )

    def call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if callable(fn):
                fn(*args)

    @property
    def stop(self) -> bool:
        return any(getattr(cb, "stop_training", False) for cb in self.callbacks)


def metric_name(metric) -> str:
    name = getattr(metric, "__name__", None) or type(metric).__name__
    return name.lower() if not name.startswith("<") else "metric"


class Metrics:
    """The user's metrics over one pass: ``update(logits, labels)`` per batch, ``compute()`` a dict."""

    def __init__(self, metrics: Iterable | None):
        self.metrics = list(metrics or [])
        for m in self.metrics:
            if not callable(m) and not hasattr(m, "update"):
                raise CnnzooError(f"metric {m!r} is neither callable nor a torchmetrics Metric")
        names = [metric_name(m) for m in self.metrics]
        if len(set(names)) != len(names):
            raise CnnzooError(f"two metrics have the same name: {', '.join(names)}")
        self.names = names
        self.reset()

    def __bool__(self) -> bool:
        return bool(self.metrics)

    def reset(self) -> None:
        self._sums = [0.0] * len(self.metrics)
        self._count = 0
        for m in self.metrics:
            if hasattr(m, "reset") and hasattr(m, "compute"):
                m.reset()

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        n = len(labels)
        for i, m in enumerate(self.metrics):
            if hasattr(m, "update") and hasattr(m, "compute"):
                m.update(logits.to(_device_of(m, logits)), labels.to(_device_of(m, logits)))
            else:
                self._sums[i] += float(m(logits, labels)) * n
        self._count += n

    def compute(self, prefix: str = "") -> dict:
        out = {}
        for i, (name, m) in enumerate(zip(self.names, self.metrics, strict=True)):
            if hasattr(m, "update") and hasattr(m, "compute"):
                value = float(m.compute())
            else:
                value = self._sums[i] / self._count if self._count else math.nan
            out[prefix + name] = value
        return out


def _device_of(metric, logits: torch.Tensor) -> torch.device:
    device = getattr(metric, "device", None)
    return device if isinstance(device, torch.device) else logits.device
