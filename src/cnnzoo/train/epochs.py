"""fit's second step: the epoch loop (train, validate, the user's metrics and callbacks, checkpoint).

Every epoch ends with a checkpoint before the callbacks' ``on_epoch_end``, so a callback that stops the
run (EarlyStopping) leaves a valid checkpoint that ``resume=True`` continues from.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

import torch

from ..errors import CnnzooError
from ..tta import for_prediction
from . import distributed as ddp
from .loop import train_batches
from .sdlm import before_pass
from .setup import Run, notice
from .sources import evaluate_on

__all__ = ["DivergedError", "train_epochs", "EpochCallback"]

EpochCallback = Callable[[dict], None]


class DivergedError(CnnzooError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def train_epochs(run: Run, on_epoch: EpochCallback | None) -> None:
    from .. import checkpoint as ckpt

    cfg, info, num_classes = run.cfg, run.info, len(run.data.classes)
    for epoch in range(run.start_epoch, cfg.epochs):
        if epoch > run.start_epoch:
            note = run.budget.update()
            notice(run, note if run.progress.mode != "quiet" else None)
        run.progress.start_epoch(epoch + 1)
        run.callbacks.call("on_epoch_begin", epoch, {})
        run.metrics.reset()
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
            run.net,
            run.source.epoch(epoch),
            run.source.steps,
            optimizer=run.optimizer,
            loss_fn=run.loss_fn,
            prepare=run.prepare,
            device=run.device,
            scheduler=run.scheduler,
            generator=run.source.augment_generator(epoch),
            bf16=run.bf16,
            on_step=on_step,
            on_batch=_on_batch(run) if run.metrics or run.callbacks.wants_batches else None,
        )
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
        seconds = time.perf_counter() - t0
        totals = torch.stack(
            [
                sums["loss_sum"].double(),
                sums["correct"].double(),
                torch.tensor(float(sums["count"]), dtype=torch.float64, device=run.device),
            ]
        )
        ddp.all_reduce_sum(totals, info)
        loss, acc, count = float(totals[0] / totals[2]), float(totals[1] / totals[2]), int(totals[2])
        if not math.isfinite(loss):
            raise DivergedError(_diverged_message(loss, epoch + 1, sums["steps"], run))
        record = {
            "epoch": epoch + 1,
            "loss": loss,
            "accuracy": acc,
            "lr": run.optimizer.param_groups[0]["lr"],
            "seconds": seconds,
            "images": count,
            "images_per_second": count / seconds,
        }
        record |= run.metrics.compute() if run.metrics else {}
        plain = for_prediction(run.model, run.card)  # under DDP too: run.net wraps run.model
        if run.val is not None:
            run.val_metrics.reset()
            v = evaluate_on(
                plain,
                run.val,
                run.prepare,
                num_classes,
                cfg.eval_batch_size,
                info,
                loss_fn=run.val_loss_fn,
                on_logits=run.val_metrics.update if run.val_metrics else None,
            )
            record |= {"val_loss": v["loss"], "val_accuracy": v["accuracy"]}
            record |= run.val_metrics.compute("val_") if run.val_metrics else {}
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
                state = {
                    "epoch": epoch + 1,
                    "optimizer": run.optimizer.state_dict(),
                    "scheduler": run.scheduler.state_dict(),
                    "rng": rngs,
                    "history": run.epochs,
                }
                ckpt.save_checkpoint(run.out.path, run.model, run.meta, state)
                run.out.write_metrics(run.epochs)
                if run.snapshots is not None:
                    run.snapshots.epoch(record)  # after the checkpoint: a snapshot's epoch can be loaded
            if info.enabled:
                torch.distributed.barrier()  # nobody runs ahead of the checkpoint
        run.callbacks.call("on_epoch_end", epoch, dict(record))
        if run.callbacks.stop:
            notice(
                run,
                f"stopped by a callback after epoch {epoch + 1} of {cfg.epochs}"
                + (f"; resume=True continues from {run.out.path}" if run.out else ""),
            )
            break


def _on_batch(run: Run):
    """train_batches' per-step hook: the callbacks' batch hooks and the training metrics."""
    wants = run.callbacks.wants_batches

    def on_batch(step, logits, labels, loss):
        if logits is None:
            if wants:
                run.callbacks.call("on_batch_begin", step, {"batch": step})
            return
        if run.metrics:
            run.metrics.update(logits.float(), labels)
        if wants:
            run.callbacks.call(
                "on_batch_end", step, {"batch": step, "size": len(labels), "loss": float(loss)}
            )

    return on_batch


def _gather_rng(info: ddp.DistInfo) -> list[torch.Tensor]:
    """Every rank's global RNG state (for dropout), so a resumed DDP run restores each rank's own."""
    state = torch.get_rng_state()
    if not info.enabled:
        return [state]
    states: list = [None] * info.world_size
    torch.distributed.all_gather_object(states, state)  # works with gloo and NCCL alike
    return states


def _diverged_message(loss: float, epoch: int, step: int, run: Run) -> str:
    where = f"epoch {epoch}, step {step}"
    out = run.out.path if run.out else None
    keep = (
        f"; the last good checkpoint (epoch {len(run.epochs)}) is kept in {out}" if out and run.epochs else ""
    )
    return (
        f"the loss became {loss} at {where}: the learning rate is probably too high (try a lower --lr){keep}"
    )
