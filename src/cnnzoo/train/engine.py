"""The training engine: ``fit``, ``evaluate``, ``predict`` in the spirit of Keras (seed 003), on plain PyTorch.

Why it is fast on a small CPU: the whole dataset is one uint8 tensor in memory (Fashion-MNIST: 47 MB), so a
batch is one index operation with a slice of a permutation; augmentation and normalisation are a few batched
tensor ops (:mod:`cnnzoo.train.augment`). No ``DataLoader``, no worker processes, no PIL, no per-image
Python. The pieces are plain functions a PyTorch user can reuse: :func:`make_prepare`,
:func:`train_one_epoch`, :func:`evaluate_tensors`, and :mod:`cnnzoo.train.optim`.

Repeatability: epoch ``e``'s permutation and augmentation come from a generator seeded with
``(seed, e)``, the global RNG (dropout) is saved in every checkpoint, so ``--resume`` after epoch k gives the
same numbers as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import atomic_write
from ..errors import CnnzooError, ShapeError
from . import distributed as ddp
from .augment import DIGIT_DATASETS, fit_to_size, normalize, random_crop, random_hflip, to_float
from .optim import OPTIMIZERS, SCHEDULES, make_optimizer, make_scheduler

__all__ = [
    "TrainConfig",
    "History",
    "DivergedError",
    "fit",
    "evaluate",
    "predict",
    "make_prepare",
    "train_one_epoch",
    "evaluate_tensors",
    "resolve_device",
]


class DivergedError(CnnzooError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Everything that defines a training run. ``fit(model, data, **options)`` accepts any field."""

    epochs: int = 10
    batch_size: int = 256  # the global batch: all processes together under DDP
    lr: float = 0.05  # the peak LR for ``batch_size`` (it does not change with the number of processes)
    optimizer: str = "sgd"  # sgd | adam | adamw
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4  # on conv/linear weights only
    schedule: str = "onecycle"  # constant | step | cosine | onecycle
    warmup_epochs: float = 0.0  # linear warmup (onecycle: 25% of the run when 0)
    step_every_epochs: int = 0  # "step" schedule: × gamma every this many epochs (0: a third of the run)
    gamma: float = 0.1
    label_smoothing: float = 0.0
    loss: str = "ce"  # "ce" (cross-entropy on logits) | "lenet5" (the 1998 paper's MAP criterion, eq. 9)
    crop_padding: int = 2  # random shifts of up to ±crop_padding pixels; 0 = none
    hflip: bool | None = None  # None: mirror images except on digit/character datasets
    validation_split: float = 0.1  # the last fraction of a seeded shuffle of the training set (Keras's name)
    limit: int | None = None  # use at most this many training and test images (smoke tests)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    channels_last: bool | None = (
        None  # None: on (CUDA and CPU: measured 1.17-1.33x for LeNet-5, docs/training.md)
    )
    bf16: bool | None = None  # bf16 autocast; None: on for CUDA and CPUs with bf16 units (AMX/AVX512-BF16)
    eval_batch_size: int = 1024
    out: str | None = None  # run directory; None writes nothing
    resume: bool = False  # continue the run in ``out`` from its last checkpoint
    progress: str | None = None  # rich | plain | quiet; None: rich on a terminal, plain otherwise


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


# --- data --------------------------------------------------------------------------------------------------


@dataclass
class _Data:
    name: str
    train_x: torch.Tensor  # (N, C, H, W) uint8
    train_y: torch.Tensor  # (N,) int64
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _resolve_data(data, data_dir: str | None = None) -> _Data:
    """A dataset name, an ``ImageDataset`` (cnnzoo.data) or an ``(images_uint8, labels)`` pair."""
    from ..data import channel_stats, load_dataset

    if isinstance(data, str):
        data = load_dataset(data, data_dir=data_dir)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise ShapeError(f"images must be a uint8 tensor (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
        mean, std = channel_stats(x)
        k = int(y.max()) + 1
        return _Data("tensors", x, y.long(), None, None, [str(i) for i in range(k)], mean, std)
    return _Data(
        data.name, data.train_images, data.train_labels, data.test_images, data.test_labels,
        list(data.classes), tuple(data.mean), tuple(data.std),
    )  # fmt: skip


def _subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if n is None or n >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


def _split(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int):
    """(train_x, train_y, val_x, val_y): the validation part is the tail of a seeded shuffle."""
    n_val = int(round(len(x) * fraction))
    if n_val == 0:
        return x, y, None, None
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + 1))
    tr, va = perm[:-n_val].sort().values, perm[-n_val:].sort().values
    return x[tr], y[tr], x[va], y[va]


def _epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    # one independent stream per (seed, epoch, stream): resuming at epoch e needs no saved generator state
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_009 + stream)


# --- the reusable pieces -----------------------------------------------------------------------------------


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CnnzooError("--device cuda: no CUDA GPU is available here (use --device cpu or auto)")
        if name == "cuda":
            name = f"cuda:{local_rank}"
    elif name != "cpu":
        raise CnnzooError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    return torch.device(name)


def _fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast pays off here. Measured, LeNet-5 on Fashion-MNIST, batch 128:
    - Intel Xeon with AMX-BF16, one thread: fp32 4,432 img/s, bf16 6,288, channels_last 5,907, both 8,404;
    - AMD EPYC (Zen 3, no bf16 units), two threads: fp32 6,385, channels_last 7,478, channels_last + bf16
      1,117 (oneDNN emulates bf16). So bf16 only where the CPU has bf16 units; channels_last everywhere."""
    if device.type == "cuda":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def make_prepare(
    input_size: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    crop_padding: int = 0,
    hflip: bool = False,
    channels_last: bool = False,
) -> Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]:
    """A function ``prepare(uint8 batch, generator) -> float batch`` for the model: pad/resize to
    ``input_size`` (28 -> 32 for LeNet-5: pad 2), augment when given a generator, /255, normalise."""
    size = tuple(input_size)[-2:]

    def prepare(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = fit_to_size(x, size)  # (N, C, H, W), still uint8 when only padded
        if generator is not None:
            x = random_crop(x, crop_padding, generator)
            if hflip:
                x = random_hflip(x, 0.5, generator)
        x = normalize(to_float(x), mean, std)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    return prepare


def _loss_fn(name: str, label_smoothing: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "ce":
        return lambda logits, y: F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    if name == "lenet5":
        from ..models.lenet import lenet5_loss

        return lenet5_loss
    raise CnnzooError(f"unknown loss {name!r}; use 'ce' or 'lenet5'")


def train_one_epoch(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
    *,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    prepare: Callable,
    scheduler=None,
    generator: torch.Generator | None = None,
    info: ddp.DistInfo = ddp.DistInfo(),
    bf16: bool = False,
    on_step: Callable[[int, float, float, int], None] | None = None,
    report_every: int = 20,
) -> dict:
    """One pass over ``order`` (a permutation of indices) in global batches of ``batch_size``; the last
    incomplete batch is dropped so every step (and every rank) sees a full batch. Returns this rank's sums:
    ``loss_sum``, ``correct``, ``count`` (tensors) and ``steps``.

    ``on_step(step, loss, accuracy, images)`` is called every ``report_every`` steps (a device sync)."""
    model.train()
    device = images.device
    steps = max(1, len(order) // batch_size)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    for step in range(steps):
        idx = ddp.shard(order[step * batch_size : (step + 1) * batch_size], info).to(device)
        x = prepare(images[idx], generator)  # (B_local, C, H, W) float
        y = labels[idx]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)  # (B_local, num_classes)
        loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        count += len(y)
        if on_step is not None and ((step + 1) % report_every == 0 or step + 1 == steps):
            on_step(step + 1, float(loss_sum) / count, int(correct) / count, count)
    return {"loss_sum": loss_sum, "correct": correct, "count": count, "steps": steps}


@torch.no_grad()
def evaluate_tensors(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    prepare: Callable,
    num_classes: int,
    batch_size: int = 1024,
    info: ddp.DistInfo = ddp.DistInfo(),
    bf16: bool = False,
) -> dict:
    """Cross-entropy loss, accuracy and the (true × predicted) confusion matrix, summed over all ranks
    (each rank evaluates a disjoint shard)."""
    model.eval()
    device = next(model.parameters()).device
    idx_all = ddp.shard(torch.arange(len(images)), info)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    for start in range(0, len(idx_all), batch_size):
        idx = idx_all[start : start + batch_size].to(images.device)
        x, y = prepare(images[idx].to(device)), labels[idx].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        confusion += torch.bincount(y * num_classes + logits.argmax(1), minlength=num_classes * num_classes)
    ddp.all_reduce_sum(loss_sum, info)
    ddp.all_reduce_sum(confusion, info)
    confusion = confusion.view(num_classes, num_classes).cpu()
    n = int(confusion.sum())
    return {
        "loss": float(loss_sum) / max(n, 1),
        "accuracy": float(confusion.diag().sum()) / max(n, 1),
        "count": n,
        "confusion": confusion,
    }


# --- fit ---------------------------------------------------------------------------------------------------


def _check_model_fits(model: nn.Module, data: _Data, input_size: tuple[int, int, int], name: str) -> None:
    """Clear one-line errors for the common mistakes, before any training: channels and classes."""
    c = data.train_x.shape[1]
    if c != input_size[0]:
        raise ShapeError(
            f"dataset {data.name!r} has {c}-channel images but model {name!r} takes {input_size[0]} channel(s); "
            f"build it with in_channels={c} (cnnzoo train does this itself)"
        )
    model.eval()
    with torch.no_grad():
        probe = torch.zeros(2, *input_size, device=next(model.parameters()).device)
        out = model(probe)
    if out.ndim != 2 or out.shape[1] < len(data.classes):
        raise ShapeError(
            f"model {name!r} gives outputs of shape {tuple(out.shape[1:])} but dataset {data.name!r} has "
            f"{len(data.classes)} classes; build it with num_classes={len(data.classes)}"
        )


def _model_kwargs(model: nn.Module, num_classes: int, input_size: tuple[int, int, int]) -> dict:
    """The create_model kwargs that rebuild ``model`` (recorded in the checkpoint)."""
    from ..registry import get_model_info

    kwargs = dict(getattr(model, "model_kwargs", {}) or {})
    kwargs.setdefault("num_classes", num_classes)
    kwargs.setdefault("in_channels", input_size[0])
    try:
        default = get_model_info(model.model_name).input_size
        if tuple(default[1:]) != tuple(input_size[1:]):
            kwargs.setdefault("input_size", list(input_size[1:]))
    except (AttributeError, CnnzooError):
        pass
    return kwargs


# The run's logs are rewritten atomically but not fsync'ed: the checkpoint (fsync'ed) is what a crash must not
# lose, and metrics.jsonl is rewritten from the checkpoint's history on --resume.
def _write_json(path: Path, obj) -> None:
    atomic_write(path, (json.dumps(obj, indent=2) + "\n").encode(), fsync=False)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows).encode(), fsync=False)


def _validate(cfg: TrainConfig) -> None:
    if cfg.optimizer not in OPTIMIZERS:
        raise CnnzooError(f"unknown optimizer {cfg.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if cfg.schedule not in SCHEDULES:
        raise CnnzooError(f"unknown schedule {cfg.schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or not cfg.lr > 0:
        raise CnnzooError("epochs and batch size must be at least 1 and the learning rate positive")
    if not 0 <= cfg.validation_split < 1:
        raise CnnzooError(f"validation_split must be in [0, 1), not {cfg.validation_split}")
    if cfg.resume and not cfg.out:
        raise CnnzooError("resume needs the run directory (--out DIR)")


def fit(model: nn.Module, data, config: TrainConfig | None = None, **options) -> History:
    """Train ``model`` on ``data`` (a dataset name, an ImageDataset or ``(uint8 images, labels)``).

    ``options`` are :class:`TrainConfig` fields (``epochs=15, lr=0.1, out="runs/x"``...). With ``out`` the
    run directory gets config.json, summary.txt, metrics.jsonl, the checkpoint (every epoch, atomically),
    result.json, curves.png and confusion.png. Under ``torchrun`` this runs DDP; rank 0 alone writes."""
    cfg = replace(config or TrainConfig(), **options)
    _validate(cfg)
    device_kind = (
        resolve_device(cfg.device).type if cfg.device == "auto" or cfg.device.startswith("cuda") else "cpu"
    )
    info = ddp.setup(device_kind)
    try:
        return _fit(model, data, cfg, info)
    finally:
        ddp.cleanup()


def _fit(model: nn.Module, data, cfg: TrainConfig, info: ddp.DistInfo) -> History:
    from .. import checkpoint as ckpt
    from .report import Progress, plot_confusion, plot_curves

    device = resolve_device(cfg.device, info.local_rank)
    if cfg.batch_size % info.world_size:
        raise CnnzooError(f"batch size {cfg.batch_size} is not divisible by the {info.world_size} processes")
    fast_bf16 = _fast_bf16(device)
    channels_last = True if cfg.channels_last is None else cfg.channels_last
    bf16 = fast_bf16 if cfg.bf16 is None else cfg.bf16
    name = getattr(model, "model_name", type(model).__name__)
    ds = _resolve_data(data)
    input_size = tuple(getattr(model, "default_input_size", None) or ds.train_x.shape[1:])
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    _check_model_fits(model, ds, input_size, name)

    x, y = _subset(ds.train_x, ds.train_y, cfg.limit, cfg.seed)
    train_x, train_y, val_x, val_y = _split(x, y, cfg.validation_split, cfg.seed)
    train_x, train_y = train_x.to(device), train_y.to(device)  # the whole set lives on the device
    test_x = test_y = None
    if ds.test_x is not None:
        test_x, test_y = _subset(ds.test_x, ds.test_y, cfg.limit, cfg.seed)
    hflip = cfg.hflip if cfg.hflip is not None else not any(ds.name.startswith(d) for d in DIGIT_DATASETS)
    prepare = make_prepare(input_size, ds.mean, ds.std, cfg.crop_padding, hflip, channels_last)
    num_classes = len(ds.classes)
    batch = min(cfg.batch_size, len(train_x) - len(train_x) % info.world_size)
    steps_per_epoch = max(1, len(train_x) // batch)

    out = Path(ddp.broadcast_object(cfg.out, info)) if cfg.out else None
    main = info.is_main
    if out is not None and main:
        params = sum(p.numel() for p in model.parameters())
        ckpt.check_writable(out, need_bytes=3 * 4 * params + (1 << 20))
        if cfg.resume:
            ckpt.recover(out)
    if info.enabled:
        torch.distributed.barrier()

    torch.manual_seed(cfg.seed + info.rank)  # the global RNG: dropout and friends
    net = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum, cfg.nesterov)
    scheduler = make_scheduler(
        optimizer, steps_per_epoch * cfg.epochs, cfg.schedule, round(cfg.warmup_epochs * steps_per_epoch),
        cfg.step_every_epochs * steps_per_epoch, cfg.gamma,
    )  # fmt: skip
    loss_fn = _loss_fn(cfg.loss, cfg.label_smoothing)

    epochs: list[dict] = []
    start_epoch = 0
    progress = Progress(cfg.epochs, steps_per_epoch, cfg.progress, enabled=main)
    if cfg.resume and (out / ckpt.TRAIN_STATE).exists():
        state = ckpt.load_train_state(out)
        ckpt.load_weights_into(model, out)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"][info.rank % len(state["rng"])])
        epochs, start_epoch = list(state["history"]), int(state["epoch"])
        progress.message(f"resuming {out} after epoch {start_epoch}")
    elif cfg.resume:
        progress.message(f"no checkpoint in {out} yet: starting from epoch 1")

    meta = ckpt.CheckpointMeta(
        model=name, model_kwargs=_model_kwargs(model, num_classes, input_size), input_size=list(input_size),
        dataset=ds.name, classes=list(ds.classes), mean=list(ds.mean), std=list(ds.std),
    )  # fmt: skip
    if out is not None and main:
        _write_json(out / "config.json", asdict(cfg) | {"out": str(out), "model": name, "dataset": ds.name,
                                                         "world_size": info.world_size})  # fmt: skip
        _write_summary(model, input_size, out / "summary.txt")

    try:
        for epoch in range(start_epoch, cfg.epochs):
            progress.start_epoch(epoch + 1)
            order = torch.randperm(len(train_x), generator=_epoch_generator(cfg.seed, epoch))
            t0 = time.perf_counter()

            def on_step(step, loss, acc, n, t0=t0, epoch=epoch):
                if not math.isfinite(loss) and not info.enabled:
                    raise DivergedError(_diverged_message(loss, epoch + 1, step, out, start_epoch, epochs))
                progress.step(step, loss, acc, n * info.world_size / (time.perf_counter() - t0))

            sums = train_one_epoch(
                net, train_x, train_y, order, batch_size=batch, optimizer=optimizer, loss_fn=loss_fn,
                prepare=prepare, scheduler=scheduler, generator=_epoch_generator(cfg.seed, epoch, 1 + info.rank),
                info=info, bf16=bf16, on_step=on_step,
            )  # fmt: skip
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - t0
            totals = torch.stack([sums["loss_sum"].double(), sums["correct"].double(),
                                  torch.tensor(float(sums["count"]), dtype=torch.float64, device=device)])  # fmt: skip
            ddp.all_reduce_sum(totals, info)
            loss, acc, count = float(totals[0] / totals[2]), float(totals[1] / totals[2]), int(totals[2])
            if not math.isfinite(loss):
                raise DivergedError(
                    _diverged_message(loss, epoch + 1, sums["steps"], out, start_epoch, epochs)
                )
            record = {"epoch": epoch + 1, "loss": loss, "accuracy": acc, "lr": optimizer.param_groups[0]["lr"],
                      "seconds": seconds, "images": count, "images_per_second": count / seconds}  # fmt: skip
            if val_x is not None:
                v = evaluate_tensors(net.module if info.enabled else net, val_x, val_y, prepare, num_classes,
                                     cfg.eval_batch_size, info)  # fmt: skip
                record |= {"val_loss": v["loss"], "val_accuracy": v["accuracy"]}
            epochs.append(record)
            progress.end_epoch(record)
            if out is not None:
                rngs = _gather_rng(info)
                if main:
                    meta.epoch, meta.metrics = epoch + 1, {k: v for k, v in record.items() if k != "epoch"}
                    state = {"epoch": epoch + 1, "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "rng": rngs, "history": epochs}  # fmt: skip
                    ckpt.save_checkpoint(out, model, meta, state)
                    _write_jsonl(out / "metrics.jsonl", epochs)
                if info.enabled:
                    torch.distributed.barrier()  # nobody runs ahead of the checkpoint
    finally:
        progress.close()

    history = History(epochs=epochs, out=out)
    # evaluation stays in fp32: the reported accuracy is then exactly what `cnnzoo eval` and predict give
    if test_x is not None:
        t = evaluate_tensors(model, test_x, test_y, prepare, num_classes, cfg.eval_batch_size, info)
        history.test = t
    train_seconds = sum(r["seconds"] for r in epochs)
    history.result = {
        "model": name, "dataset": ds.name, "epochs": len(epochs), "world_size": info.world_size,
        "device": str(device), "threads": torch.get_num_threads(),
        "test_accuracy": history.test.get("accuracy"), "test_loss": history.test.get("loss"),
        "train_seconds": train_seconds,
        "train_images_per_second": sum(r["images"] for r in epochs) / train_seconds if train_seconds else None,
        "final": epochs[-1] if epochs else {}, "params": sum(p.numel() for p in model.parameters()),
        "config": asdict(cfg) | {"out": str(out) if out else None},
    }  # fmt: skip
    model.preprocessing = {"input_size": list(input_size), "mean": list(ds.mean), "std": list(ds.std)}
    if out is not None and main:
        _write_json(out / "result.json", history.result)
        if epochs:
            plot_curves(epochs, out / "curves.png", title=f"{name} on {ds.name}")
        if history.test:
            plot_confusion(history.test["confusion"], ds.classes, out / "confusion.png",
                           title=f"{name} on {ds.name}: test accuracy {history.test['accuracy']:.4f}")  # fmt: skip
    return history


def _gather_rng(info: ddp.DistInfo) -> list[torch.Tensor]:
    """Every rank's global RNG state (for dropout), so a resumed DDP run restores each rank's own."""
    state = torch.get_rng_state()
    if not info.enabled:
        return [state]
    states: list = [None] * info.world_size
    torch.distributed.all_gather_object(states, state)  # works with gloo and NCCL alike
    return states


def _diverged_message(loss: float, epoch: int, step: int, out, start_epoch: int, epochs: list) -> str:
    where = f"epoch {epoch}, step {step}"
    keep = f"; the last good checkpoint (epoch {len(epochs)}) is kept in {out}" if out and epochs else ""
    return (
        f"the loss became {loss} at {where}: the learning rate is probably too high (try a lower --lr){keep}"
    )


def _write_summary(model: nn.Module, input_size, path: Path) -> None:
    try:
        from ..analysis.summary import summary
    except ImportError:  # the analyzer is optional for training
        return
    try:
        path.write_text(str(summary(model, input_size=tuple(input_size))) + "\n")
    except CnnzooError:
        pass


# --- evaluate / predict ----------------------------------------------------------------------------------


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
    the model was trained with (``model.preprocessing``, set by fit and load_checkpoint), else the data's."""
    ds = _resolve_data(data)
    if ds.test_x is not None:
        x, y = ds.test_x, ds.test_y
    else:
        x, y = ds.train_x, ds.train_y  # a plain (images, labels) pair is the evaluation set itself
    x, y = _subset(x, y, limit, 0)
    dev = resolve_device(device)
    model.to(dev)
    pre = getattr(model, "preprocessing", None) or {}
    input_size = tuple(getattr(model, "default_input_size", None) or pre.get("input_size") or x.shape[1:])
    name = getattr(model, "model_name", type(model).__name__)
    if x.shape[1] != input_size[0]:
        raise ShapeError(
            f"dataset {ds.name!r} has {x.shape[1]}-channel images but model {name!r} takes {input_size[0]} channel(s)"
        )
    mean = mean or pre.get("mean") or ds.mean
    std = std or pre.get("std") or ds.std
    prepare = make_prepare(input_size, mean, std)
    return evaluate_tensors(
        model, x.to(dev), y.to(dev), prepare, max(len(ds.classes), int(y.max()) + 1), batch_size
    )


@torch.no_grad()
def predict(
    model: nn.Module, images: torch.Tensor, *, batch_size: int = 1024, mean=None, std=None
) -> torch.Tensor:
    """Class probabilities (N, num_classes) for uint8 images (N, C, H, W), preprocessed like training
    (``model.preprocessing`` or the given ``mean``/``std``); float images are taken as already preprocessed."""
    model.eval()
    device = next(model.parameters()).device
    if images.ndim == 3:
        images = images[None]
    if images.dtype == torch.uint8:
        pre = getattr(model, "preprocessing", None) or {}
        size = getattr(model, "default_input_size", None) or pre.get("input_size") or images.shape[1:]
        prepare = make_prepare(size, mean or pre.get("mean", [0.0]), std or pre.get("std", [1.0]))
    else:
        prepare = lambda x, g=None: x  # noqa: E731
    outs = [
        model(prepare(images[i : i + batch_size].to(device))).softmax(1)
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(outs).cpu()
