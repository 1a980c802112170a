"""``fit`` and ``evaluate`` in the spirit of Keras (keras.io's ``Model.fit``), on plain PyTorch.

``fit`` is three steps: :func:`_setup` (device, DDP, data, the model's card, optimizer, resuming, the run
directory), :func:`_train_epochs` (the epoch loop: train, validate, checkpoint) and :func:`_finish` (test
metrics, result.json, plots, the completed card attached to the model).

Repeatability: epoch ``e``'s permutation and augmentation come from a generator seeded with ``(seed, e)``,
the global RNG (dropout) is saved in every checkpoint, so ``--resume`` after epoch k gives the same numbers
as an uninterrupted run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from ..card import ModelCard, attach_card, card_of
from ..config import TrainConfig, config_from
from ..data import dataset_facts
from ..data.stream import FolderStream, StreamEval, StreamTrain
from ..device import resolve_device
from ..errors import CnnzooError, ShapeError
from ..threads import CpuBudget
from ..tta import for_prediction
from . import distributed as ddp
from .data import Data, resolve_data, subset
from .finetune import freeze, pretrained_stats
from .loop import evaluate_tensors, fast_bf16, loss_function, prepare_for, train_batches
from .optim import make_scheduler, optimizer_for
from .recipes import normalization_stats
from .rundir import RunDir
from .sdlm import before_pass
from .snapshots import SnapshotWriter
from .sources import (
    TensorBatches,
    as_tensors,
    channels_of,
    evaluate_on,
    input_of,
    make_sources,
    resolve,
    stream_result,
)

__all__ = ["TrainConfig", "History", "DivergedError", "fit", "evaluate"]


class DivergedError(CnnzooError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


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


EpochCallback = Callable[[dict], None]


def fit(
    model: nn.Module,
    data,
    config: TrainConfig | None = None,
    *,
    on_epoch: EpochCallback | None = None,
    **options,
) -> History:
    """Train ``model`` on ``data`` (a dataset name, an ImageDataset or ``(uint8 images, labels)``).

    ``options`` are :class:`TrainConfig` fields (``epochs=15, lr=0.1, out="runs/x"``...). With ``out`` the
    run directory (:class:`~cnnzoo.train.rundir.RunDir`) gets config.json, summary.txt, metrics.jsonl, the
    checkpoint (every epoch, atomically), result.json, curves.png and confusion.png. ``on_epoch(record)`` is
    called after every epoch with its record (a line of metrics.jsonl). Under ``torchrun`` this runs DDP;
    rank 0 alone writes."""
    cfg = config_from(options, base=config)  # every option's range: cnnzoo.config
    info = ddp.setup(resolve_device(cfg.device).type)
    try:
        run = _setup(model, data, cfg, info)
        try:
            _train_epochs(run, on_epoch)
        finally:
            run.progress.close()
        return _finish(run)
    finally:
        ddp.cleanup()


@dataclass
class _Run:
    """The state ``_setup`` builds and the epoch loop and ``_finish`` use."""

    cfg: TrainConfig
    info: ddp.DistInfo
    device: torch.device
    model: nn.Module
    net: nn.Module  # the model, or its DDP wrapper
    card: ModelCard  # the model's card completed with the dataset: what it is trained and checkpointed as
    data: Data
    train: tuple[torch.Tensor, torch.Tensor] | None  # the training tensors; None when streaming
    val: tuple[torch.Tensor, torch.Tensor] | StreamEval | None
    test: tuple[torch.Tensor, torch.Tensor] | StreamEval | None
    source: TensorBatches | StreamTrain  # the training batches, from memory or streamed (train/sources.py)
    prepare: Callable
    bf16: bool
    batch: int
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: Callable
    progress: object
    budget: CpuBudget  # threads from the cores other processes leave free, re-checked every epoch
    out: RunDir | None
    meta: object  # checkpoint.CheckpointMeta, updated with dataclasses.replace after every epoch
    epochs: list[dict] = field(default_factory=list)
    start_epoch: int = 0
    last_test: dict | None = None  # the test metrics after the last epoch (with test_every_epoch)
    snapshots: SnapshotWriter | None = None  # with cfg.snapshots: what the web app's Train page shows


def _setup(model: nn.Module, data, cfg: TrainConfig, info: ddp.DistInfo) -> _Run:
    from .. import checkpoint as ckpt
    from .report import Progress

    device = resolve_device(cfg.device, info.local_rank)
    if cfg.batch_size % info.world_size:
        raise CnnzooError(f"batch size {cfg.batch_size} is not divisible by the {info.world_size} processes")
    channels_last = True if cfg.channels_last is None else cfg.channels_last
    bf16 = fast_bf16(device) if cfg.bf16 is None else cfg.bf16
    ds = resolve(data, cfg)  # in memory, or an image folder streamed (cnnzoo.data.stream)
    base = card_of(model) or ModelCard(model=type(model).__name__, input_size=input_of(ds))
    if cfg.normalization == "pretrained":  # fine-tuning: the inputs the pretrained features were learnt on
        mean, std = pretrained_stats(base)
    else:
        mean, std = normalization_stats(cfg.normalization, ds.mean, ds.std)
    hflip = cfg.hflip if cfg.hflip is not None else dataset_facts(ds.name).mirroring
    card = base.replace(model_kwargs=_model_kwargs(base, len(ds.classes)), dataset=ds.name,
                        classes=tuple(ds.classes), mean=mean, std=std,
                        test_flip=cfg.test_flip and hflip)  # fmt: skip
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    _check_model_fits(model, ds, card)

    parts = make_sources(ds, card, cfg, info, device, hflip)
    batch, steps_per_epoch = parts.batch, parts.source.steps

    out = RunDir(ddp.broadcast_object(cfg.out, info)) if cfg.out else None
    if out is not None and info.is_main:
        params = sum(p.numel() for p in model.parameters())
        ckpt.check_writable(out.path, need_bytes=3 * 4 * params + (1 << 20))
        if cfg.resume:
            ckpt.recover(out.path)
    if info.enabled:
        torch.distributed.barrier()

    torch.manual_seed(cfg.seed + info.rank)  # the global RNG: dropout and friends
    net = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    frozen = freeze(model, cfg.freeze, cfg.freeze_until)  # before the optimizer: it gets the rest only
    optimizer = optimizer_for(model, cfg, bf16)
    scheduler = make_scheduler(
        optimizer, steps_per_epoch * cfg.epochs, cfg.schedule, round(cfg.warmup_epochs * steps_per_epoch),
        cfg.step_every_epochs * steps_per_epoch, cfg.gamma, cfg.milestones, steps_per_epoch,
    )  # fmt: skip
    run = _Run(
        cfg=cfg, info=info, device=device, model=model, net=net, card=card, data=ds, train=parts.train,
        val=parts.val, test=parts.test, source=parts.source,
        prepare=prepare_for(card, cfg.crop_padding, hflip, channels_last, _resized_crop(cfg, ds)), bf16=bf16,
        batch=batch,
        optimizer=optimizer, scheduler=scheduler, loss_fn=loss_function(cfg.loss, cfg.label_smoothing),
        progress=Progress(cfg.epochs, steps_per_epoch, cfg.progress, enabled=info.is_main), out=out,
        meta=ckpt.CheckpointMeta(**card.to_dict()),
        # under torchrun each process keeps the one thread torchrun gave it: the ranks share the cores
        budget=CpuBudget(cfg.threads or (None if cfg.adapt_threads and not info.enabled else torch.get_num_threads())),
    )  # fmt: skip
    _notice(run, run.budget.start(probe=0.1))
    if frozen:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        _notice(run, f"{len(frozen)} parameter tensors frozen; {trainable:,} parameters train")
    if isinstance(ds, FolderStream):
        _notice(run, f"streaming {ds.name} ({ds.reason}): {len(parts.source.dataset):,} training images")
    if cfg.resume and (out.path / ckpt.META).exists():
        ckpt.load_meta(out.path)  # its format version checked: a newer one is refused, never rewritten
        if not (out.path / ckpt.TRAIN_STATE).exists():
            raise ckpt.CheckpointError(f"{out.path}: has weights but no {ckpt.TRAIN_STATE}, so it cannot be "
                                       "resumed; its weights are kept (train into another --out)")  # fmt: skip
    if cfg.resume and (out.path / ckpt.TRAIN_STATE).exists():
        state = ckpt.load_train_state(out.path)
        ckpt.load_weights_into(model, out.path)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"][info.rank % len(state["rng"])])
        run.epochs, run.start_epoch = list(state["history"]), int(state["epoch"])
        run.progress.message(f"resuming {out.path} after epoch {run.start_epoch}")
    elif cfg.resume:
        run.progress.message(f"no checkpoint in {out.path} yet: starting from epoch 1")
    if out is not None and info.is_main:
        out.write_config(asdict(cfg) | {"out": str(out.path), "model": card.model, "dataset": ds.name,
                                        "world_size": info.world_size} | _pretrained(card))  # fmt: skip
        _write_summary(model, card.input_size, out)
    if cfg.snapshots and out is not None and info.is_main:
        shown = run.test or run.val or run.train  # the test set unless the data has none
        run.snapshots = SnapshotWriter(out.path, model, run.prepare, *as_tensors(shown), ds.classes,
                                       cfg.epochs, steps_per_epoch, batch, card)  # fmt: skip
        run.snapshots.start(run.start_epoch)
    return run


def _notice(run: _Run, message: str | None) -> None:
    if message:
        run.progress.message(message)


def _train_epochs(run: _Run, on_epoch: EpochCallback | None) -> None:
    from .. import checkpoint as ckpt

    cfg, info, num_classes = run.cfg, run.info, len(run.data.classes)
    for epoch in range(run.start_epoch, cfg.epochs):
        if epoch > run.start_epoch:
            _notice(run, run.budget.update())
        run.progress.start_epoch(epoch + 1)
        t0 = time.perf_counter()
        train_x = run.train[0] if run.train else None  # None when streaming
        before_pass(run.optimizer, run.model, train_x, run.prepare, cfg.seed, epoch)  # SDLM's curvature

        def on_step(step, loss, acc, n, t0=t0, epoch=epoch):
            if not math.isfinite(loss) and not info.enabled:
                raise DivergedError(_diverged_message(loss, epoch + 1, step, run))
            ips = n * info.world_size / (time.perf_counter() - t0)
            run.progress.step(step, loss, acc, ips)
            if run.snapshots is not None:
                run.snapshots.step(epoch + 1, step, loss, acc, ips)

        sums = train_batches(
            run.net, run.source.epoch(epoch), run.source.steps, optimizer=run.optimizer, loss_fn=run.loss_fn,
            prepare=run.prepare, device=run.device, scheduler=run.scheduler,
            generator=run.source.augment_generator(epoch), bf16=run.bf16, on_step=on_step,
        )  # fmt: skip
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
        seconds = time.perf_counter() - t0
        totals = torch.stack([sums["loss_sum"].double(), sums["correct"].double(),
                              torch.tensor(float(sums["count"]), dtype=torch.float64, device=run.device)])  # fmt: skip
        ddp.all_reduce_sum(totals, info)
        loss, acc, count = float(totals[0] / totals[2]), float(totals[1] / totals[2]), int(totals[2])
        if not math.isfinite(loss):
            raise DivergedError(_diverged_message(loss, epoch + 1, sums["steps"], run))
        record = {"epoch": epoch + 1, "loss": loss, "accuracy": acc, "lr": run.optimizer.param_groups[0]["lr"],
                  "seconds": seconds, "images": count, "images_per_second": count / seconds}  # fmt: skip
        plain = for_prediction(run.model, run.card)  # under DDP too: run.net wraps run.model
        if run.val is not None:
            v = evaluate_on(plain, run.val, run.prepare, num_classes, cfg.eval_batch_size, info)
            record |= {"val_loss": v["loss"], "val_accuracy": v["accuracy"]}
        if cfg.test_every_epoch and run.test is not None:
            run.last_test = evaluate_on(plain, run.test, run.prepare, num_classes, cfg.eval_batch_size, info)
            record |= {"test_loss": run.last_test["loss"], "test_accuracy": run.last_test["accuracy"]}
        run.epochs.append(record)
        run.progress.end_epoch(record)
        if on_epoch is not None:
            on_epoch(record)
        if run.out is not None:
            rngs = _gather_rng(info)
            if info.is_main:
                run.meta = replace(
                    run.meta, epoch=epoch + 1, metrics={k: v for k, v in record.items() if k != "epoch"}
                )
                state = {"epoch": epoch + 1, "optimizer": run.optimizer.state_dict(),
                         "scheduler": run.scheduler.state_dict(), "rng": rngs, "history": run.epochs}  # fmt: skip
                ckpt.save_checkpoint(run.out.path, run.model, run.meta, state)
                run.out.write_metrics(run.epochs)
                if run.snapshots is not None:
                    run.snapshots.epoch(record)  # after the checkpoint: a snapshot's epoch can be loaded
            if info.enabled:
                torch.distributed.barrier()  # nobody runs ahead of the checkpoint


def _finish(run: _Run) -> History:
    cfg, epochs, name = run.cfg, run.epochs, run.card.model
    history = History(epochs=epochs, out=run.out.path if run.out else None)
    # evaluation stays in fp32: the reported accuracy is then exactly what `cnnzoo eval` and predict give
    if run.last_test is not None:
        history.test = run.last_test  # the same model was just evaluated after its last epoch
    elif run.test is not None:
        history.test = evaluate_on(for_prediction(run.model, run.card), run.test, run.prepare, len(run.data.classes),
                                   cfg.eval_batch_size, run.info)  # fmt: skip
    no_flip = None  # what the test-time flip adds: the same model, one view
    if run.card.test_flip and run.test is not None:
        no_flip = evaluate_on(run.model, run.test, run.prepare, len(run.data.classes), cfg.eval_batch_size,
                              run.info)["accuracy"]  # fmt: skip
    train_seconds = sum(r["seconds"] for r in epochs)
    history.result = {
        "model": name, "dataset": run.data.name, "epochs": len(epochs), "world_size": run.info.world_size,
        "device": str(run.device), "threads": torch.get_num_threads(),
        "test_accuracy": history.test.get("accuracy"), "test_loss": history.test.get("loss"),
        "train_seconds": train_seconds,
        "train_images_per_second": sum(r["images"] for r in epochs) / train_seconds if train_seconds else None,
        "final": epochs[-1] if epochs else {}, "params": sum(p.numel() for p in run.model.parameters()),
        "config": asdict(cfg) | {"out": str(history.out) if history.out else None},
    }  # fmt: skip
    if no_flip is not None:
        history.result["test_accuracy_no_flip"] = no_flip
    history.result |= stream_result(run.data, cfg.workers, run.info) | _pretrained(
        run.card
    )  # skipped_files: every rank's
    attach_card(run.model, run.card)
    if run.out is not None and run.info.is_main:
        run.out.write_result(history.result)
        run.out.write_plots(epochs, history.test, run.data.classes, title=f"{name} on {run.data.name}")
    return history


def _check_model_fits(model: nn.Module, data: Data, card: ModelCard) -> None:
    """Clear one-line errors for the common mistakes, before any training: channels and classes."""
    c = channels_of(data)
    if c != card.channels:
        raise ShapeError(
            f"dataset {data.name!r} has {c}-channel images but model {card.model!r} takes {card.channels} "
            f"channel(s); build it with in_channels={c} (cnnzoo train does this itself)"
        )
    model.eval()
    with torch.no_grad():
        probe = torch.zeros(2, *card.input_size, device=next(model.parameters()).device)
        out = model(probe)
    if out.ndim != 2 or out.shape[1] < len(data.classes):
        raise ShapeError(
            f"model {card.model!r} gives outputs of shape {tuple(out.shape[1:])} but dataset {data.name!r} has "
            f"{len(data.classes)} classes; build it with num_classes={len(data.classes)}"
        )


def _model_kwargs(card: ModelCard, num_classes: int) -> dict:
    """The create_model kwargs that rebuild the model of ``card`` (recorded in the checkpoint)."""
    from ..models import get_model_info

    kwargs = dict(card.model_kwargs)
    kwargs.setdefault("num_classes", num_classes)
    kwargs.setdefault("in_channels", card.channels)
    try:
        default = get_model_info(card.model).input_size
        if tuple(default[1:]) != tuple(card.input_size[1:]):
            kwargs.setdefault("input_size", list(card.input_size[1:]))
    except CnnzooError:  # not a registered model: nothing to rebuild it from
        pass
    return kwargs


def _pretrained(card: ModelCard) -> dict:
    """config.json's and result.json's record of the weights the model started from, when pretrained."""
    return {"pretrained": dict(card.pretrained)} if card.pretrained else {}


def _resized_crop(cfg: TrainConfig, ds) -> bool:
    """Random resized crops for photos (image folders), shifts for the digit and CIFAR sets, unless told."""
    return cfg.resized_crop if cfg.resized_crop is not None else ds.name.startswith("imagefolder")


def _gather_rng(info: ddp.DistInfo) -> list[torch.Tensor]:
    """Every rank's global RNG state (for dropout), so a resumed DDP run restores each rank's own."""
    state = torch.get_rng_state()
    if not info.enabled:
        return [state]
    states: list = [None] * info.world_size
    torch.distributed.all_gather_object(states, state)  # works with gloo and NCCL alike
    return states


def _diverged_message(loss: float, epoch: int, step: int, run: _Run) -> str:
    where = f"epoch {epoch}, step {step}"
    out = run.out.path if run.out else None
    keep = (
        f"; the last good checkpoint (epoch {len(run.epochs)}) is kept in {out}" if out and run.epochs else ""
    )
    return (
        f"the loss became {loss} at {where}: the learning rate is probably too high (try a lower --lr){keep}"
    )


def _write_summary(model: nn.Module, input_size, out: RunDir) -> None:
    try:
        from ..analysis.summary import summary
    except ImportError:  # the analyzer is optional for training
        return
    try:
        out.write_summary(str(summary(model, input_size=tuple(input_size))))
    except CnnzooError:
        pass


def evaluate(
    model: nn.Module,
    data,
    *,
    batch_size: int = 1024,
    device: str = "auto",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    limit: int | None = None,
) -> dict:
    """Test-set ``{"loss", "accuracy", "count", "confusion"}`` of ``model`` on ``data`` (a dataset name, an
    ImageDataset, or ``(uint8 images, labels)``). Normalisation: ``mean``/``std`` if given, else the one
    the model was trained with (its card, completed by fit and load_checkpoint), else the data's."""
    ds = resolve_data(data)
    if ds.test_x is not None:
        x, y = ds.test_x, ds.test_y
    else:
        x, y = ds.train_x, ds.train_y  # a plain (images, labels) pair is the evaluation set itself
    x, y = subset(x, y, limit, 0)
    dev = resolve_device(device)
    model.to(dev)
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
    classes = max(len(ds.classes), int(y.max()) + 1)
    return evaluate_tensors(for_prediction(model, card), x.to(dev), y.to(dev), prepare, classes, batch_size)
