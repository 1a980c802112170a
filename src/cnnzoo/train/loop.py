"""The reusable pieces of a training run: preparing batches, one epoch of training, evaluation on tensors.

Augmentation and normalisation are a few batched tensor ops (:mod:`cnnzoo.train.augment`,
:func:`cnnzoo.preprocess.preprocess`): no ``DataLoader``, no worker processes, no PIL, no per-image Python.
An image folder too large for memory arrives instead as uint8 batches already cropped by the workers of
:mod:`cnnzoo.data.stream`, through the same :func:`train_batches` and :func:`evaluate_batches`.
This module is the only place in cnnzoo that calls ``loss.backward()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..card import ModelCard
from ..errors import CnnzooError
from ..preprocess import preprocess
from . import distributed as ddp
from .augment import random_crop, random_hflip, random_resized_crop

__all__ = [
    "make_prepare",
    "prepare_for",
    "loss_function",
    "fast_bf16",
    "train_one_epoch",
    "train_batches",
    "tensor_batches",
    "evaluate_tensors",
    "evaluate_batches",
]

Prepare = Callable[..., torch.Tensor]  # prepare(uint8 batch, generator=None) -> float batch


def prepare_for(
    card: ModelCard,
    crop_padding: int = 0,
    hflip: bool = False,
    channels_last: bool = False,
    resized_crop: bool = False,
) -> Prepare:
    """``prepare(uint8 batch, generator=None) -> float batch`` for the model of ``card``: the one
    :func:`~cnnzoo.preprocess.preprocess`, with random shifts (or random resized crops, for photos) and
    mirroring when given a generator."""

    def prepare(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        augment = None
        if generator is not None:

            def augment(batch: torch.Tensor) -> torch.Tensor:
                if resized_crop:
                    batch = random_resized_crop(batch, generator)
                else:
                    batch = random_crop(batch, crop_padding, generator)
                return random_hflip(batch, 0.5, generator) if hflip else batch

        return preprocess(x, card, augment=augment, channels_last=channels_last)

    return prepare


def make_prepare(
    input_size: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    crop_padding: int = 0,
    hflip: bool = False,
    channels_last: bool = False,
) -> Prepare:
    """:func:`prepare_for` a model taking ``input_size`` = (C, H, W), normalised with ``mean``/``std``
    (28 -> 32 for LeNet-5: pad 2)."""
    card = ModelCard(model="", input_size=tuple(input_size), mean=tuple(mean), std=tuple(std))
    return prepare_for(card, crop_padding, hflip, channels_last)


def loss_function(
    name: str, label_smoothing: float = 0.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "ce":
        return lambda logits, y: F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    if name == "lenet5":
        from ..models.lenet import lenet5_loss

        return lenet5_loss
    raise CnnzooError(f"unknown loss {name!r}; use 'ce' or 'lenet5'")


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast pays off here. Measured, LeNet-5 on Fashion-MNIST, batch 128:
    - Intel Xeon with AMX-BF16, one thread: fp32 4,432 img/s, bf16 6,288, channels_last 5,907, both 8,404;
    - AMD EPYC (Zen 3, no bf16 units), two threads: fp32 6,385, channels_last 7,478, channels_last + bf16
      1,117 (oneDNN emulates bf16). So bf16 only where the CPU has bf16 units; channels_last everywhere."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def train_one_epoch(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
    *,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    prepare: Prepare,
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
    steps = max(1, len(order) // batch_size)
    return train_batches(
        model,
        tensor_batches(images, labels, order, batch_size, info),
        steps,
        optimizer=optimizer,
        loss_fn=loss_fn,
        prepare=prepare,
        scheduler=scheduler,
        generator=generator,
        bf16=bf16,
        on_step=on_step,
        report_every=report_every,
        device=images.device,
    )


def tensor_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
    batch_size: int,
    info: ddp.DistInfo = ddp.DistInfo(),
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's (uint8 images, labels) of each global batch of ``order``: one index operation each."""
    for step in range(max(1, len(order) // batch_size)):
        idx = ddp.shard(order[step * batch_size : (step + 1) * batch_size], info).to(images.device)
        yield images[idx], labels[idx]


def train_batches(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    *,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    prepare: Prepare,
    device: torch.device,
    scheduler=None,
    generator: torch.Generator | None = None,
    bf16: bool = False,
    on_step: Callable[[int, float, float, int], None] | None = None,
    report_every: int = 20,
    on_batch: Callable[[int, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None], None]
    | None = None,
) -> dict:
    """One epoch of ``steps`` batches of (uint8 images, labels) on ``device``: from memory
    (:func:`tensor_batches`) or streamed (:mod:`cnnzoo.data.stream`). Returns this rank's sums.

    ``on_batch(step, None, None, None)`` before each step and ``on_batch(step, logits, labels, loss)``
    after it (detached): fit's callbacks and metrics."""
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    for step, (images, y) in enumerate(batches):
        if on_batch is not None:
            on_batch(step, None, None, None)
        x = prepare(images, generator)  # (B_local, C, H, W) float
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
        if on_batch is not None:
            on_batch(step, logits.detach(), y, loss.detach())
        if on_step is not None and ((step + 1) % report_every == 0 or step + 1 == steps):
            on_step(step + 1, float(loss_sum) / count, int(correct) / count, count)
    return {"loss_sum": loss_sum, "correct": correct, "count": count, "steps": steps}


def evaluate_tensors(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    prepare: Prepare,
    num_classes: int,
    batch_size: int = 1024,
    info: ddp.DistInfo = ddp.DistInfo(),
    bf16: bool = False,
    **kw,
) -> dict:
    """``{"loss", "accuracy", "count", "confusion"}``: cross-entropy, accuracy and the (true × predicted)
    confusion matrix, summed over all ranks (each rank evaluates a disjoint shard). ``kw``: see
    :func:`evaluate_batches`."""
    device = next(model.parameters()).device

    def batches():
        idx_all = ddp.shard(torch.arange(len(images)), info)
        for start in range(0, len(idx_all), batch_size):
            idx = idx_all[start : start + batch_size].to(images.device)
            yield images[idx].to(device), labels[idx].to(device)

    return evaluate_batches(model, batches(), prepare, num_classes, info, bf16, **kw)


@torch.no_grad()
def evaluate_batches(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    prepare: Prepare,
    num_classes: int,
    info: ddp.DistInfo = ddp.DistInfo(),
    bf16: bool = False,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    on_logits: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
) -> dict:
    """:func:`evaluate_tensors` on this rank's share of (uint8 images, labels) batches on the model's device:
    loss and confusion summed here, then over all ranks. ``loss_fn``: the loss (mean over a batch) instead
    of cross-entropy; ``on_logits(logits, labels)``: each batch's outputs (fit's metrics)."""
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    for images, y in batches:
        x = prepare(images)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        if loss_fn is None:
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        else:
            loss_sum += loss_fn(logits.float(), y).double() * len(y)
        if on_logits is not None:
            on_logits(logits.float(), y)
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
