"""What a run shows and leaves behind: the progress display and the plots.

:class:`Progress` is a rich progress bar (epoch, step, loss, accuracy, img/s, ETA) on a terminal, one plain
line per epoch when the output is a file or a pipe (logs, CI), and nothing per step with ``quiet``.
:func:`plot_curves` and :func:`plot_confusion` write ``curves.png`` and ``confusion.png`` with matplotlib's
non-interactive Agg backend (no display needed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

__all__ = ["Progress", "plot_curves", "plot_confusion", "format_epoch"]


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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; works without a display and in threads
    import matplotlib.pyplot as plt

    return plt


def plot_curves(epochs: list[dict], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, training and validation, side by side."""
    plt = _pyplot()
    x = [r["epoch"] for r in epochs]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(x, [r[key] for r in epochs], "o-", label=f"train {label}")
        if epochs and f"val_{key}" in epochs[0]:
            ax.plot(x, [r[f"val_{key}"] for r in epochs], "s-", label=f"validation {label}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_confusion(confusion: torch.Tensor, classes: list[str], path: str | Path, title: str = "") -> Path:
    """A (true × predicted) count matrix as a heat map, counts in the cells, rows = true class."""
    plt = _pyplot()
    cm = confusion.cpu().numpy()
    k = len(classes)
    size = max(5.0, 0.5 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:  # numbers stay readable up to ~20 classes
        top = cm.max() if cm.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > top / 2 else "black")  # fmt: skip
    ax.set_title(title or "confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
