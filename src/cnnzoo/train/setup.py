"""fit's first step: from the model, the data and the options to a :class:`Run` (device, DDP, data, the
model's card, optimizer, resuming, the run directory), and the one-line header that says every choice.

The user's own pieces (:class:`Pieces`: a loss, an optimizer, metrics, callbacks, validation data) come in
beside the :class:`~cnnzoo.config.TrainConfig`; on data cnnzoo does not know (arrays, a Dataset, a
DataLoader) nothing is held out, shifted or mirrored unless asked (:func:`user_defaults`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..card import ModelCard, card_of
from ..config import TrainConfig
from ..data import dataset_facts
from ..data.stream import FolderStream, StreamEval, StreamTrain
from ..device import resolve_device
from ..errors import CnnzooError, ShapeError
from ..threads import CpuBudget
from . import distributed as ddp
from .callbacks import CallbackList, Metrics
from .data import Data
from .finetune import freeze, pretrained_stats
from .inputs import LoaderData, any_dtype_prepare, is_user_data
from .loop import fast_bf16, loss_function, prepare_for
from .optim import make_optimizer, make_scheduler
from .recipes import normalization_stats
from .rundir import RunDir
from .snapshots import SnapshotWriter
from .sources import TensorBatches, as_tensors, channels_of, input_of, make_sources, resolve

__all__ = ["Pieces", "Run", "setup", "notice", "user_defaults", "pretrained_record"]


@dataclass
class Pieces:
    """What the user brings beside the options: validation data, a loss, an optimizer, metrics, callbacks."""

    y: object = None
    validation_data: object = None
    loss: Callable | None = None  # loss(logits, labels) -> scalar tensor
    optimizer: object = None  # a torch optimizer, or a factory taking the trainable parameters
    metrics: list = field(default_factory=list)
    callbacks: list = field(default_factory=list)


def user_defaults(options: dict, data, pieces: Pieces) -> dict:
    """The options with fit's defaults for the user's own data and pieces: no validation split, shifts or
    mirroring unless asked; a constant learning rate for the user's own optimizer; ``progress=False/True``;
    the thread budget of the CLI unless ``seed`` or ``threads`` asks for a fixed thread count."""
    options = dict(options)
    if options.get("progress") is False:
        options["progress"] = "quiet"
    elif options.get("progress") is True:
        options["progress"] = None
    if pieces.y is not None or is_user_data(data):
        options.setdefault("validation_split", 0.0)
        options.setdefault("crop_padding", 0)
        options.setdefault("hflip", False)
    if pieces.optimizer is not None:
        options.setdefault("schedule", "constant")
    options.setdefault("adapt_threads", "seed" not in options and not options.get("threads"))
    return options


@dataclass
class Run:
    """The state :func:`setup` builds and the epoch loop and fit's finish use."""

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
    callbacks: CallbackList | None = None  # the user's (Keras's hooks)
    metrics: Metrics | None = None  # the user's, on the training batches
    val_metrics: Metrics | None = None  # the same metrics on the validation set
    val_loss_fn: Callable | None = None  # the user's loss for val_loss (None: cross-entropy)
    header: str = ""  # the one line that says every choice (result.json's "header")


def setup(model: nn.Module, data, cfg: TrainConfig, info: ddp.DistInfo, pieces: Pieces) -> Run:
    from .. import checkpoint as ckpt
    from .report import Progress

    device = resolve_device(cfg.device, info.local_rank)
    if cfg.batch_size % info.world_size:
        raise CnnzooError(f"batch size {cfg.batch_size} is not divisible by the {info.world_size} processes")
    channels_last = True if cfg.channels_last is None else cfg.channels_last
    bf16 = fast_bf16(device) if cfg.bf16 is None else cfg.bf16
    ds = resolve(data, cfg, pieces.y, pieces.validation_data)  # in memory, streamed, or a user's DataLoader
    base = card_of(model) or ModelCard(
        model=getattr(model, "model_name", None) or type(model).__name__,
        input_size=input_of(ds),
        source=getattr(model, "model_source", {}),
    )
    _check_channels(ds, base)
    if isinstance(ds, LoaderData):  # no labels are known before the loader runs: the model's outputs
        ds.classes = [str(i) for i in range(_output_width(model, base))]
    if cfg.normalization == "pretrained":  # fine-tuning: the inputs the pretrained features were learnt on
        mean, std = pretrained_stats(base)
    else:
        mean, std = normalization_stats(cfg.normalization, ds.mean, ds.std)
    hflip = cfg.hflip if cfg.hflip is not None else dataset_facts(ds.name).mirroring
    card = base.replace(
        model_kwargs=_model_kwargs(base, len(ds.classes)),
        dataset=ds.name,
        classes=tuple(ds.classes),
        mean=mean,
        std=std,
        test_flip=cfg.test_flip and hflip,
    )
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    _check_classes(model, ds, card)

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
    optimizer = (
        _user_optimizer(model, pieces.optimizer)
        if pieces.optimizer is not None
        else make_optimizer(model, cfg, bf16)
    )
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch)
    augment = prepare_for(card, cfg.crop_padding, hflip, channels_last, _resized_crop(cfg, ds))
    prepare = any_dtype_prepare(augment, card.input_size, cfg.crop_padding, hflip, channels_last)
    run = Run(
        cfg=cfg,
        info=info,
        device=device,
        model=model,
        net=net,
        card=card,
        data=ds,
        train=parts.train,
        val=parts.val,
        test=parts.test,
        source=parts.source,
        prepare=prepare,
        bf16=bf16,
        batch=batch,
        optimizer=optimizer,
        scheduler=scheduler,
        loss_fn=pieces.loss or loss_function(cfg.loss, cfg.label_smoothing),
        progress=Progress(cfg.epochs, steps_per_epoch, cfg.progress, enabled=info.is_main),
        out=out,
        meta=ckpt.CheckpointMeta(**card.to_dict()),
        # under torchrun each process keeps the one thread torchrun gave it: the ranks share the cores
        budget=CpuBudget(
            cfg.threads or (None if cfg.adapt_threads and not info.enabled else torch.get_num_threads())
        ),
    )
    run.callbacks = CallbackList(
        pieces.callbacks, model, {"epochs": cfg.epochs, "steps": steps_per_epoch, "card": card}
    )
    run.metrics, run.val_metrics = Metrics(pieces.metrics), Metrics(pieces.metrics)
    run.val_loss_fn = pieces.loss
    budget_note = run.budget.start(probe=0.1)
    run.header = header(run, pieces, hflip, channels_last)
    if run.progress.mode != "quiet":
        notice(run, run.header)
        notice(run, budget_note)
    if frozen:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        notice(run, f"{len(frozen)} parameter tensors frozen; {trainable:,} parameters train")
    if isinstance(ds, FolderStream):
        notice(run, f"streaming {ds.name} ({ds.reason}): {len(parts.source.dataset):,} training images")
    if cfg.resume and (out.path / ckpt.META).exists():
        ckpt.load_meta(out.path)  # its format version checked: a newer one is refused, never rewritten
        if not (out.path / ckpt.TRAIN_STATE).exists():
            raise ckpt.CheckpointError(
                f"{out.path}: has weights but no {ckpt.TRAIN_STATE}, so it cannot be resumed; its weights "
                "are kept (train into another --out)"
            )
    if cfg.resume and (out.path / ckpt.TRAIN_STATE).exists():
        _check_resume_settings(out, cfg)
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
        out.write_config(
            asdict(cfg)
            | {"out": str(out.path), "model": card.model, "dataset": ds.name, "world_size": info.world_size}
            | pretrained_record(card)
        )
        _write_summary(model, card.input_size, out)
    shown = run.test or run.val or run.train  # the test set unless the data has none (a DataLoader may not)
    if cfg.snapshots and out is not None and info.is_main and shown is not None:
        run.snapshots = SnapshotWriter(
            out.path,
            model,
            run.prepare,
            *as_tensors(shown),
            card,
            cfg,
            steps_per_epoch=steps_per_epoch,
            batch=batch,
        )
        run.snapshots.start(run.start_epoch)
    return run


def notice(run: Run, message: str | None) -> None:
    if message:
        run.progress.message(message)


def _check_channels(data, card: ModelCard) -> None:
    """A clear one-line error for the commonest mistake, before any training."""
    c = channels_of(data)
    if c != card.channels:
        raise ShapeError(
            f"dataset {data.name!r} has {c}-channel images but model {card.model!r} takes {card.channels} "
            f"channel(s); build it with in_channels={c} (cnnzoo train does this itself)"
        )


def _output_width(model: nn.Module, card: ModelCard) -> int:
    """The model's number of outputs (its classes), from a forward pass on zeros in eval mode."""
    model.eval()
    with torch.no_grad():
        probe = torch.zeros(2, *card.input_size, device=next(model.parameters()).device)
        out = model(probe)
    if out.ndim != 2:
        raise ShapeError(
            f"model {card.model!r} gives outputs of shape {tuple(out.shape[1:])}, not class scores"
        )
    return out.shape[1]


def _check_classes(model: nn.Module, data, card: ModelCard) -> None:
    width = _output_width(model, card)
    if width < len(data.classes):
        raise ShapeError(
            f"model {card.model!r} gives {width} outputs but dataset {data.name!r} has "
            f"{len(data.classes)} classes; build it with num_classes={len(data.classes)}"
        )


def _user_optimizer(model: nn.Module, optimizer) -> torch.optim.Optimizer:
    """The user's optimizer as given, or built by their factory (``torch.optim.Adam``, a lambda...) from
    the trainable parameters."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if callable(optimizer):
        built = optimizer([p for p in model.parameters() if p.requires_grad])
        if isinstance(built, torch.optim.Optimizer):
            return built
    raise CnnzooError(
        f"optimizer must be a name, a torch optimizer or a factory of one, got {optimizer!r}"[:200]
    )


def header(run: Run, pieces: Pieces, hflip: bool, channels_last: bool) -> str:
    """fit's one line: every choice it makes, the defaults included."""
    cfg, ds, card = run.cfg, run.data, run.card
    c, h, w = card.input_size
    if isinstance(ds, LoaderData) and ds.how:
        what = f"your Dataset, {ds.how} ({run.source.steps} batches of {run.batch}, {ds.layout} -> N×C×H×W)"
    elif isinstance(ds, LoaderData):
        what = f"your DataLoader ({run.source.steps} batches of {run.batch or '?'}, {ds.layout})"
    elif isinstance(ds, Data) and ds.how:
        what = f"{len(run.train[0]):,} images from your Dataset, {ds.how} ({ds.layout} -> N×C×H×W)"
    elif isinstance(ds, Data) and ds.layout:
        what = f"{len(run.train[0]):,} images from your arrays ({ds.layout} -> N×C×H×W)"
    else:
        what = f"{ds.name}"
    floats = getattr(ds, "floats", False)
    scale = (
        "float inputs as given" if floats else f"uint8 /255, mean {_short(card.mean)} std {_short(card.std)}"
    )
    if run.val is None:
        val = "no validation"
    elif pieces.validation_data is not None:
        val = "validation: validation_data"
    else:
        val = f"validation: {cfg.validation_split:g} of the training set"
    aug = [
        f"shifts ±{cfg.crop_padding}px" if cfg.crop_padding and not _resized_crop(cfg, ds) else "",
        "random resized crops" if _resized_crop(cfg, ds) else "",
        "flips" if hflip else "",
        "test-time flip" if card.test_flip else "",
    ]
    aug_text = ", ".join(a for a in aug if a) or "no augmentation"
    loss = getattr(pieces.loss, "__name__", type(pieces.loss).__name__) if pieces.loss else cfg.loss
    opt = type(run.optimizer).__name__ if pieces.optimizer is not None else f"{cfg.optimizer} lr {cfg.lr:g}"
    n = torch.get_num_threads()
    threads = f"{n} thread{'s' if n > 1 else ''} ({'adaptive' if cfg.adapt_threads and not cfg.threads else 'fixed'})"
    fmt = "channels_last while training" if channels_last else "contiguous"
    return (
        f"fit {card.model}: {what}; input {c}×{h}×{w}, {scale}; {val}; {aug_text}; loss {loss}; {opt}, "
        f"{cfg.schedule} schedule; {cfg.epochs} epoch{'s' if cfg.epochs > 1 else ''}, batch {run.batch}; seed {cfg.seed}; {threads}; "
        f"{fmt}; {run.device}"
    )


def _short(values) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


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


def pretrained_record(card: ModelCard) -> dict:
    """config.json's and result.json's record of the weights the model started from, when pretrained."""
    return {"pretrained": dict(card.pretrained)} if card.pretrained else {}


def _resized_crop(cfg: TrainConfig, ds) -> bool:
    """Random resized crops for photos (image folders), shifts for the digit and CIFAR sets, unless told."""
    return cfg.resized_crop if cfg.resized_crop is not None else ds.name.startswith("imagefolder")


def _write_summary(model: nn.Module, input_size, out: RunDir) -> None:
    try:
        from ..analysis.summary import summary
    except ImportError:  # the analyzer is optional for training
        return
    try:
        out.write_summary(str(summary(model, input_size=tuple(input_size))))
    except CnnzooError:
        pass


# What the optimizer's and the schedule's saved state hold or are shaped by: a resumed run must keep them, or
# the state would not fit (other parameter groups), would fit and be wrong (an Adam restarted from SGD's
# buffers), or would silently win over the new value (the learning rate and momentum live in that state).
RESUME_FIXED = (
    *("optimizer", "muon_layers", "decay_all", "lr_backbone", "freeze", "freeze_until", "schedule"),
    *("lr", "muon_lr", "momentum", "nesterov", "betas", "weight_decay"),
)


def _check_resume_settings(out: RunDir, cfg: TrainConfig) -> None:
    """Refuse, in one line and before anything is written, to resume ``out`` with settings of
    :data:`RESUME_FIXED` other than those it was trained with (its config.json)."""
    from .. import checkpoint as ckpt

    saved, now = out.read_config() or {}, json.loads(json.dumps(asdict(cfg)))  # as config.json writes them
    differ = [f"{k}={saved[k]!r} (now {now[k]!r})" for k in RESUME_FIXED if k in saved and saved[k] != now[k]]
    if differ:
        raise ckpt.CheckpointError(
            f"{out.path} was trained with {', '.join(differ)}: resume it with the same settings (`cnnzoo "
            "train --resume` reads them from its config.json); nothing was changed"
        )
