"""How the experiments train: their recipe (:class:`TrainSettings`), mapped onto :func:`cnnzoo.train.fit`.

fit records, per epoch, the training loss and error (averaged over the epoch's batches in training mode, as
He et al. plot it) and, with ``test_every_epoch``, the test loss and error: the curves the papers' figures
plot. :func:`train_variants` trains several nets with several seeds, side by side in worker processes on a
GPU (a small net alone leaves it mostly idle), one after another on a CPU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..config import TrainConfig
from .stats import aggregate

__all__ = ["TrainSettings", "train_config", "load_data", "train_job", "train_variants", "run_jobs", "curves"]


_BASE = {f.name: f for f in fields(TrainConfig)}


def _default(name: str, value):
    """TrainConfig's field ``name`` with another default (its rule and help kept)."""
    return field(default=value, metadata=_BASE[name].metadata)


@dataclass
class TrainSettings(TrainConfig):
    """TrainConfig with He et al. 2015's CIFAR-10 recipe (Sec. 4.2) as its defaults: plain SGD (no Nesterov),
    momentum 0.9, weight decay 1e-4 on every parameter, batch 128, lr 0.1 divided by 10 at 50% and 75% of
    training, 4-pixel-pad random crops and horizontal flips; no validation split (the papers train on the
    whole training set), the test set every epoch. Plus what only the experiments need."""

    batch_size: int = _default("batch_size", 128)
    lr: float = _default("lr", 0.1)
    nesterov: bool = _default("nesterov", False)
    weight_decay: float = _default("weight_decay", 1e-4)
    decay_all: bool = _default("decay_all", True)
    schedule: str = _default("schedule", "milestones")
    crop_padding: int = _default("crop_padding", 4)
    hflip: bool | None = _default("hflip", True)
    validation_split: float = _default("validation_split", 0.0)
    test_every_epoch: bool = _default("test_every_epoch", True)
    progress: str | None = _default("progress", "quiet")
    pad_to: int | None = None  # zero-pad 28×28 images to e.g. 32×32 (CIFAR-style nets, LeNet-5)
    train_subset: int | None = None  # first N training images (quick runs)
    test_subset: int | None = None
    extra: dict = field(default_factory=dict)  # free-form notes recorded in results.json


def train_config(settings: TrainSettings, device: str, seed: int) -> TrainConfig:
    """The :class:`~cnnzoo.config.TrainConfig` part of ``settings``, on ``device`` with ``seed``."""
    chosen = {name: getattr(settings, name) for name in _BASE} | {"device": device, "seed": seed}
    return TrainConfig(**chosen | {"milestones": tuple(settings.milestones)})


@functools.lru_cache(maxsize=4)
def load_data(name: str = "fashion-mnist", data_dir: str | None = None):
    """The dataset through :func:`cnnzoo.data.load_dataset`, never downloading (experiments run offline);
    cached, so the variants of one experiment share it. ``data_dir`` is the folder searched first."""
    from ..data import load_dataset

    return load_dataset(name, data_dir=data_dir, download=False)


def _subsets(data, settings: TrainSettings):
    """The first ``train_subset`` / ``test_subset`` images (the whole set's mean and std kept)."""
    n, m = settings.train_subset, settings.test_subset
    return replace(
        data,
        train_images=data.train_images[:n] if n else data.train_images,
        train_labels=data.train_labels[:n] if n else data.train_labels,
        test_images=data.test_images[:m] if m else data.test_images,
        test_labels=data.test_labels[:m] if m else data.test_labels,
    )


def curves(history, params: int) -> dict:
    """``{"train_loss", "train_error", "test_loss", "test_error", "epoch_seconds": [per epoch], "params"}``
    from fit's History; errors are fractions in 0..1."""
    e = history.epochs
    return {
        "train_loss": [r["loss"] for r in e],
        "train_error": [1.0 - r["accuracy"] for r in e],
        "test_loss": [r["test_loss"] for r in e],
        "test_error": [1.0 - r["test_accuracy"] for r in e],
        "epoch_seconds": [r["seconds"] for r in e],
        "params": params,
    }


def train_job(
    builder: Callable,
    kwargs: dict,
    settings: TrainSettings,
    device: str,
    seed: int,
    dataset: str = "fashion-mnist",
    data_dir: str | None = None,
) -> dict:
    """One training run as a picklable job for :func:`run_jobs`: build with ``builder(**kwargs)`` (a
    module-level function, e.g. :func:`cnnzoo.create_model`), train with fit, return its :func:`curves`.
    Prints one line per epoch (what :func:`cnnzoo.experiments.degradation.rebuild_from_log` reads back)."""
    import torch

    from ..card import ModelCard, attach_card, card_of
    from ..device import seed_everything
    from ..train import fit

    data = load_data(dataset, data_dir)
    seed_everything(seed)  # the same seed gives the same initial weights
    model = builder(**kwargs)
    card = card_of(model) or ModelCard(model=builder.__name__, input_size=tuple(data.train_images.shape[1:]))
    if settings.pad_to:
        card = card.replace(input_size=(card.channels, settings.pad_to, settings.pad_to))
    attach_card(model, card)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest conv algorithms
    # progress lines name the net and what varies, e.g. "lenet5_modern activation=relu,pool=max"
    varies = ",".join(
        f"{k}={v}" for k, v in kwargs.items() if k not in ("name", "in_channels", "num_classes")
    )
    label = f"{card.model}{' ' + varies if varies else ''}"

    def report(r: dict) -> None:  # one line per epoch (long runs; workers print to the same console)
        print(
            f"  {label} seed {seed} epoch {r['epoch']}/{settings.epochs}: train error "
            f"{100 * (1 - r['accuracy']):.2f}%, test error {100 * (1 - r['test_accuracy']):.2f}% "
            f"({r['seconds']:.1f} s)",
            flush=True,
        )

    history = fit(
        model, _subsets(data, settings), config=train_config(settings, device, seed), on_epoch=report
    )
    return curves(history, sum(p.numel() for p in model.parameters()))


def train_variants(
    variants: dict[str, tuple[Callable, dict]],
    settings: TrainSettings,
    device: str,
    seeds: int,
    dataset: str = "fashion-mnist",
    last: int = 3,
    data_dir: str | None = None,
) -> dict[str, dict]:
    """Train each ``name -> (builder, kwargs)`` with ``seeds`` seeds and return ``name -> aggregate(...)``.

    On a GPU all runs go side by side in worker processes; on a CPU they run one after another. The final
    errors average the ``last`` epochs."""
    load_data(dataset, data_dir)  # fails here, once, when the files are missing
    jobs = [
        (b, kw, settings, device, seed, dataset, data_dir)
        for b, kw in variants.values()
        for seed in range(seeds)
    ]
    histories = run_jobs(train_job, jobs, parallel=len(jobs) if device.startswith("cuda") else 1)
    last = min(last, settings.epochs)
    return {
        name: aggregate(histories[i * seeds : (i + 1) * seeds], last=last) for i, name in enumerate(variants)
    }


def run_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], parallel: int = 1) -> list[Any]:
    """``[fn(*job) for job in jobs]``, in up to ``parallel`` worker processes.

    Small CIFAR-style nets leave a big GPU mostly idle (each step is a few hundred short kernels), so the
    degradation run trains its models side by side in separate processes; on a CPU one job at a time is
    faster. ``fn`` must be a module-level function (the workers are spawned, not forked, for CUDA)."""
    if parallel <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(
        max_workers=min(parallel, len(jobs)), mp_context=mp.get_context("spawn")
    ) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
        return [f.result() for f in futures]
