"""``fit`` and ``evaluate`` in the spirit of Keras (keras.io's ``Model.fit``), on plain PyTorch.

``fit`` is three steps: :func:`~cnnzoo.train.setup.setup` (device, DDP, data, the model's card, optimizer,
resuming, the run directory, the one-line header), :func:`~cnnzoo.train.epochs.train_epochs` (the epoch
loop: train, validate, checkpoint, the callbacks) and :func:`_finish` (test metrics, result.json, plots,
the completed card attached to the model, which is handed back in its usual memory format).

Repeatability: epoch ``e``'s permutation and augmentation come from a generator seeded with ``(seed, e)``,
the global RNG (dropout, a DataLoader's shuffling) is seeded at the start and saved in every checkpoint,
so ``--resume`` after epoch k gives the same numbers as an uninterrupted run, and two runs with the same
``seed`` from the same weights end equal whatever the global RNG did before (``seed=`` also fixes the
thread count: a sum over another number of threads rounds differently).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..card import ModelCard, attach_card, card_of
from ..config import TrainConfig, config_from
from ..device import resolve_device
from ..errors import ShapeError
from ..notebook import history_html, history_markdown
from ..rundir import run_lock
from ..tta import for_prediction
from . import distributed as ddp
from .data import resolve_data, subset
from .epochs import DivergedError, EpochCallback, train_epochs
from .inputs import any_dtype_prepare, is_user_data, user_data
from .loop import evaluate_tensors, prepare_for
from .setup import Pieces, Run, pretrained_record, setup, user_defaults
from .sources import evaluate_on, stream_result

__all__ = ["TrainConfig", "History", "DivergedError", "fit", "evaluate"]


@dataclass
class History:
    """What ``fit`` returns. ``history`` is Keras's dict of lists: ``loss``, ``accuracy``, ``val_loss``...
    ``epochs`` has one dict per epoch (the lines of metrics.jsonl); ``test`` and ``result`` the final test
    metrics and result.json's content; ``out`` the run directory (or None)."""

    epochs: list[dict] = field(default_factory=list)
    test: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)
    out: Path | None = None

    @property
    def history(self) -> dict[str, list[float]]:
        keys = [k for k in (self.epochs[0] if self.epochs else {}) if k != "epoch"]
        return {k: [r[k] for r in self.epochs] for k in keys}

    _repr_html_ = history_html  # Jupyter: one row per epoch, the test result below
    _repr_markdown_ = history_markdown


def fit(
    model: nn.Module | str,
    x,
    y=None,
    *,
    config: TrainConfig | None = None,
    validation_data=None,
    loss=None,
    optimizer=None,
    metrics: Iterable | None = None,
    callbacks: Iterable | None = None,
    on_epoch: EpochCallback | None = None,
    **options,
) -> History:
    """Train ``model`` on ``x``: a dataset name (``"mnist"``, ``"imagefolder:PATH"``), an ImageDataset,
    images with their labels ``y`` (numpy or torch; N×H×W, N×H×W×C or N×C×H×W; uint8 scaled by cnnzoo,
    float taken as is; an ``(images, labels)`` pair too), a map-style ``Dataset`` of (image, label), or a
    ``DataLoader``, which runs as built (its batch size, workers and sampler).

    ``validation_data``: ``(images, labels)``, a Dataset or a DataLoader (else ``validation_split``).
    ``loss``: a name or ``loss(logits, labels)``; ``optimizer``: a name, a torch optimizer, or a factory
    of one (``torch.optim.Adam``) given the trainable parameters; ``metrics``: ``metric(logits, labels)``
    callables or torchmetrics objects; ``callbacks``: Keras-style (:mod:`cnnzoo.train.callbacks`).

    ``options`` are :class:`TrainConfig` fields (``epochs=15, lr=0.1, out="runs/x"`` or a Path, ``progress=False``...);
    on data cnnzoo does not know there is no validation split, shift or flip unless asked, and the first
    line printed says every choice. With ``out`` the run directory gets config.json, summary.txt,
    metrics.jsonl, the checkpoint (every epoch, atomically), result.json and the plots. ``on_epoch(record)``
    is called after every epoch; while it writes ``out`` it holds the run's lock (:mod:`cnnzoo.rundir`): a
    second writer of the same directory, in this process or another, gets a one-line ``RunBusyError``
    naming the holder's pid. Under ``torchrun`` this runs DDP; rank 0 alone writes. The model is
    trained in place (channels_last while it trains, handed back contiguous) and gets its card."""
    if isinstance(
        model, str
    ):  # any model argument: a zoo name, a layer string, FILE.py:NAME, torchvision:NAME
        from ..models.source import resolve_model

        model = resolve_model(model)
    pieces = Pieces(y, validation_data, None, None, list(metrics or []), list(callbacks or []))
    if loss is not None and not isinstance(loss, str):
        pieces.loss = loss
    elif loss is not None:
        options["loss"] = loss
    if optimizer is not None and not isinstance(optimizer, str):
        pieces.optimizer = optimizer
    elif optimizer is not None:
        options["optimizer"] = optimizer
    if isinstance(options.get("out"), os.PathLike):  # a pathlib.Path as well as its text
        options["out"] = os.fspath(options["out"])
    if config is None:
        options = user_defaults(options, x, pieces)
    cfg = config_from(options, base=config)  # every option's range: cnnzoo.config
    info = ddp.setup(resolve_device(cfg.device).type)
    threads = torch.get_num_threads()  # the thread budget's choice is the run's: the caller's comes back
    try:
        # one writer per run directory, from its first file to its last: the CLI, the web trainer, a notebook
        with run_lock(cfg.out) if cfg.out and info.is_main else nullcontext():
            run = setup(model, x, cfg, info, pieces)
            run.callbacks.call("on_train_begin", {})
            try:
                train_epochs(run, on_epoch)
            finally:
                run.progress.close()
            history = _finish(run)
            run.callbacks.call("on_train_end", {})
        return history
    finally:
        torch.set_num_threads(threads)
        ddp.cleanup()


def _finish(run: Run) -> History:
    cfg, epochs, name = run.cfg, run.epochs, run.card.model
    history = History(epochs=epochs, out=run.out.path if run.out else None)
    # evaluation stays in fp32: the reported accuracy is then exactly what `cnnzoo eval` and predict give
    if run.last_test is not None:
        history.test = run.last_test  # the same model was just evaluated after its last epoch
    elif run.test is not None:
        history.test = evaluate_on(
            for_prediction(run.model, run.card),
            run.test,
            run.prepare,
            len(run.data.classes),
            cfg.eval_batch_size,
            run.info,
        )
    no_flip = None  # what the test-time flip adds: the same model, one view
    if run.card.test_flip and run.test is not None:
        no_flip = evaluate_on(
            run.model, run.test, run.prepare, len(run.data.classes), cfg.eval_batch_size, run.info
        )["accuracy"]
    train_seconds = sum(r["seconds"] for r in epochs)
    history.result = {
        "model": name,
        "dataset": run.data.name,
        "epochs": len(epochs),
        "world_size": run.info.world_size,
        "device": str(run.device),
        "threads": torch.get_num_threads(),
        "test_accuracy": history.test.get("accuracy"),
        "test_loss": history.test.get("loss"),
        "train_seconds": train_seconds,
        "train_images_per_second": sum(r["images"] for r in epochs) / train_seconds
        if train_seconds
        else None,
        "final": epochs[-1] if epochs else {},
        "header": run.header,
        "params": sum(p.numel() for p in run.model.parameters()),
        "config": asdict(cfg) | {"out": str(history.out) if history.out else None},
    }
    if no_flip is not None:
        history.result["test_accuracy_no_flip"] = no_flip
    history.result |= stream_result(run.data, cfg.workers, run.info) | pretrained_record(
        run.card
    )  # skipped_files: every rank's
    run.model.to(memory_format=torch.contiguous_format)  # as it came: channels_last was for training
    attach_card(run.model, run.card)
    if run.out is not None and run.info.is_main:
        run.out.write_result(history.result)
        run.out.write_plots(epochs, history.test, run.data.classes, title=f"{name} on {run.data.name}")
    return history


def evaluate(
    model: nn.Module,
    x,
    y=None,
    *,
    batch_size: int = 1024,
    device: str = "auto",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    limit: int | None = None,
) -> dict:
    """Test-set ``{"loss", "accuracy", "count", "confusion"}`` of ``model`` on ``x``: a dataset name, an
    ImageDataset, images with their labels ``y`` (any form :func:`fit` takes), a Dataset or a DataLoader.
    Normalisation of uint8 images: ``mean``/``std`` if given, else the one the model was trained with (its
    card, completed by fit and load_checkpoint), else the data's; float images are taken as they are."""
    from torch.utils.data import DataLoader

    dev = resolve_device(device)
    model.to(dev)
    if isinstance(x, DataLoader):
        ds = user_data(x)
        card = card_of(model) or ModelCard(model=type(model).__name__, input_size=(ds.channels, *ds.size))
        prepare = any_dtype_prepare(prepare_for(card), card.input_size)
        with torch.no_grad():
            width = model.eval()(torch.zeros(1, *card.input_size, device=dev)).shape[1]
        from .inputs import LoaderEval

        return evaluate_on(
            for_prediction(model, card), LoaderEval(x, dev), prepare, width, batch_size, ddp.DistInfo()
        )
    ds = user_data(x, y) if y is not None or is_user_data(x) else resolve_data(x)
    if ds.test_x is not None:
        x, y = ds.test_x, ds.test_y
    else:
        x, y = ds.train_x, ds.train_y  # a plain (images, labels) pair is the evaluation set itself
    x, y = subset(x, y, limit, 0)
    card = card_of(model) or ModelCard(model=type(model).__name__, input_size=tuple(x.shape[1:]))
    if x.shape[1] != card.channels:
        raise ShapeError(
            f"dataset {ds.name!r} has {x.shape[1]}-channel images but model {card.model!r} takes "
            f"{card.channels} channel(s)"
        )
    trained = card.dataset != ""  # fit and load_checkpoint complete the card with the training statistics
    mean = mean or (card.mean if trained else ds.mean)
    std = std or (card.std if trained else ds.std)
    prepare = prepare_for(card.replace(mean=tuple(mean), std=tuple(std)))  # with the card's resize and crop
    prepare = any_dtype_prepare(prepare, card.input_size)
    classes = max(len(ds.classes), int(y.max()) + 1)
    return evaluate_tensors(for_prediction(model, card), x.to(dev), y.to(dev), prepare, classes, batch_size)
