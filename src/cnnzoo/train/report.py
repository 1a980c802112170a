"""What a run shows while it trains: the progress display.

:class:`Progress` is a rich progress bar (epoch, step, loss, accuracy, img/s, ETA) on a terminal, one plain
line per epoch when the output is a file or a pipe (logs, CI), and nothing per epoch with ``quiet``. In a
Jupyter kernel the progress of an epoch is one display that updates in place a few times a second and ends as
the epoch's log line, so a saved notebook reads like the plain log. The plots of a run are drawn by
:mod:`cnnzoo.plots`.
"""

from __future__ import annotations

import html
import sys
import time

__all__ = ["Progress", "format_epoch", "in_jupyter_kernel"]

UPDATE_SECONDS = 0.25  # the least time between two updates of a notebook's progress line


def format_epoch(r: dict, epochs: int) -> str:
    """One log line for an epoch record (a line of metrics.jsonl)."""
    line = (
        f"epoch {r['epoch']:>3}/{epochs}  loss {r['loss']:.4f}  acc {r['accuracy']:.4f}"
        f"  {r['images_per_second']:,.0f} img/s  {r['seconds']:.1f}s"
    )
    if "val_loss" in r:
        line += f"  val_loss {r['val_loss']:.4f}  val_acc {r['val_accuracy']:.4f}"
    return line


def in_jupyter_kernel() -> bool:
    """Whether this process is a Jupyter kernel; IPython is never imported here (a kernel has it loaded)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


class _NotebookLine:
    """One epoch's progress as a notebook display (text/plain and text/html), updated in place, throttled."""

    def __init__(self, epochs: int, steps: int) -> None:
        self.epochs, self.steps = epochs, steps
        self._handle, self._last = None, 0.0

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self._t0 = epoch, time.perf_counter()
        self._show(self._live(0, None), new=True)

    def step(self, step: int, loss: float, acc: float, ips: float) -> None:
        now = time.perf_counter()
        if now - self._last >= UPDATE_SECONDS:
            self._show(self._live(step, (loss, acc, ips)))

    def end_epoch(self, record: dict) -> None:
        line = format_epoch(record, self.epochs)
        self._show((line, f"<pre>{html.escape(line)}</pre>"))

    def _live(self, step: int, figures: tuple | None) -> tuple[str, str]:
        done = step / self.steps if self.steps else 0.0
        bar = "#" * round(20 * done) + "-" * (20 - round(20 * done))
        text = f"epoch {self.epoch:>3}/{self.epochs}  [{bar}] {step}/{self.steps}"
        if figures is not None:
            loss, acc, ips = figures
            text += f"  loss {loss:.4f}  acc {acc:.4f}  {ips:,.0f} img/s"
            if step:
                text += f"  {(time.perf_counter() - self._t0) * (self.steps - step) / step:.0f}s left"
        markup = f'<progress value="{step}" max="{self.steps}"></progress> <code>{html.escape(text)}</code>'
        return text, markup

    def _show(self, texts: tuple[str, str], new: bool = False) -> None:
        from IPython.display import display

        bundle = {"text/plain": texts[0], "text/html": texts[1]}
        if new or self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        self._last = time.perf_counter()


class Progress:
    """Per-step progress for rank 0. ``mode``: "rich" (a TTY), "plain" (one line per epoch) or "quiet"; "rich"
    or the default in a Jupyter kernel is "notebook", a display per epoch that ends as its log line."""

    def __init__(
        self, epochs: int, steps_per_epoch: int, mode: str | None = None, enabled: bool = True
    ) -> None:
        self.epochs, self.steps = epochs, steps_per_epoch
        self.mode = mode or ("rich" if sys.stdout.isatty() else "plain")
        if mode in (None, "rich") and in_jupyter_kernel():
            self.mode = "notebook"
        self.enabled = enabled
        self._bar = self._task = None
        self._line = _NotebookLine(epochs, steps_per_epoch) if enabled and self.mode == "notebook" else None
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
        if self._line is not None:
            self._line.start_epoch(epoch)
        if self._bar is not None:
            self._task = self._bar.add_task(
                "train", total=self.steps, epoch=epoch, loss=0.0, acc=0.0, ips=0.0
            )

    def step(self, step: int, loss: float, acc: float, ips: float) -> None:
        if self._line is not None:
            self._line.step(step, loss, acc, ips)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=step, loss=loss, acc=acc, ips=ips)

    def end_epoch(self, record: dict) -> None:
        if not self.enabled or self.mode == "quiet":
            return
        if self._line is not None:
            self._line.end_epoch(record)
        elif self._bar is not None:
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
