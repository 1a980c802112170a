"""What a run shows while it trains: the progress display.

:class:`Progress` is a rich progress bar (epoch, step, loss, accuracy, img/s, ETA) on a terminal, one plain
line per epoch when the output is a file or a pipe (logs, CI), and nothing per epoch with ``quiet``. The plots
of a run are drawn by :mod:`cnnzoo.plots`.
"""

from __future__ import annotations

import sys

__all__ = ["Progress", "format_epoch"]


def format_epoch(r: dict, epochs: int) -> str:
    """One log line for an epoch record (a line of metrics.jsonl)."""
    line = (
        f"epoch {r['epoch']:>3}/{epochs}  loss {r['loss']:.4f}  acc {r['accuracy']:.4f}"
        f"  {r['images_per_second']:,.0f} img/s  {r['seconds']:.1f}s"
    )
    if "val_loss" in r:
        line += f"  val_loss {r['val_loss']:.4f}  val_acc {r['val_accuracy']:.4f}"
    return line


class Progress:
    """Per-step progress for rank 0. ``mode``: "rich" (a TTY), "plain" (one line per epoch) or "quiet"."""

    def __init__(
        self, epochs: int, steps_per_epoch: int, mode: str | None = None, enabled: bool = True
    ) -> None:
        self.epochs, self.steps = epochs, steps_per_epoch
        self.mode = mode or ("rich" if sys.stdout.isatty() else "plain")
        self.enabled = enabled
        self._bar = self._task = None
        if enabled and self.mode == "rich":
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("epoch {task.fields[epoch]}/" + str(epochs)),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.4f}  {task.fields[ips]:,.0f} img/s"
                ),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()

    def start_epoch(self, epoch: int) -> None:
        if self._bar is not None:
            self._task = self._bar.add_task(
                "train", total=self.steps, epoch=epoch, loss=0.0, acc=0.0, ips=0.0
            )

    def step(self, step: int, loss: float, acc: float, ips: float) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=step, loss=loss, acc=acc, ips=ips)

    def end_epoch(self, record: dict) -> None:
        if not self.enabled or self.mode == "quiet":
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.steps, loss=record["loss"], acc=record["accuracy"])
            if "val_loss" in record:
                self._bar.console.print(
                    f"  val_loss {record['val_loss']:.4f}  val_acc {record['val_accuracy']:.4f}",
                    highlight=False,
                )
        else:
            print(format_epoch(record, self.epochs), flush=True)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text, highlight=False)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
