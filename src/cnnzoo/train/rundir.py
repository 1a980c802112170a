"""A training run's directory: the one owner of its files, besides the checkpoint.

    config.json     the TrainConfig of the run (what ``--resume`` continues with), model and dataset names
    summary.txt     the analyzer's layer table of the model
    metrics.jsonl   one JSON line per finished epoch (``History.epochs``)
    result.json     the final test metrics, speed, hardware and configuration (``History.result``)
    curves.png      loss and accuracy per epoch;  confusion.png  the test set's confusion matrix

The checkpoint files (model.safetensors, checkpoint.json, train_state.pt) are :mod:`cnnzoo.checkpoint`'s.
Every file is replaced atomically (:func:`cnnzoo.atomic.atomic_write`); the logs are not fsync'ed: the
checkpoint (fsync'ed) is what a crash must not lose, and metrics.jsonl is rewritten from the checkpoint's
history on ``--resume``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_write
from ..errors import CnnzooError

__all__ = ["RunDir"]


class RunDir:
    CONFIG = "config.json"
    SUMMARY = "summary.txt"
    METRICS = "metrics.jsonl"
    RESULT = "result.json"
    CURVES = "curves.png"
    CONFUSION = "confusion.png"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --- writers -------------------------------------------------------------------------------------------

    def _write(self, name: str, text: str) -> None:
        atomic_write(self.path / name, text.encode(), fsync=False)

    def write_config(self, config: dict) -> None:
        self._write(self.CONFIG, json.dumps(config, indent=2) + "\n")

    def write_summary(self, text: str) -> None:
        self._write(self.SUMMARY, text.rstrip("\n") + "\n")

    def write_metrics(self, epochs: list[dict]) -> None:
        self._write(self.METRICS, "".join(json.dumps(r) + "\n" for r in epochs))

    def write_result(self, result: dict) -> None:
        self._write(self.RESULT, json.dumps(result, indent=2) + "\n")

    def write_plots(self, epochs: list[dict], test: dict, classes: list[str], title: str) -> None:
        """curves.png (when there are epochs) and confusion.png (when there is a test result)."""
        from ..plots import plot_confusion, plot_curves

        if epochs:
            plot_curves(epochs, self.path / self.CURVES, title=title)
        if test:
            plot_confusion(
                test["confusion"],
                classes,
                self.path / self.CONFUSION,
                title=f"{title}: test accuracy {test['accuracy']:.4f}",
            )

    # --- readers: a missing file is None (or []), a damaged one a one-line CnnzooError -----------------------

    def _read_json(self, name: str) -> dict | None:
        path = self.path / name
        if not path.exists():
            return None
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CnnzooError(f"{path}: corrupt JSON ({e})") from None
        except RecursionError:
            raise CnnzooError(f"{path}: JSON nested too deeply") from None
        except OSError as e:
            raise CnnzooError(f"{path}: cannot read ({e.strerror or e})") from None
        if not isinstance(doc, dict):
            raise CnnzooError(f"{path}: expected a JSON object, got {type(doc).__name__}")
        return doc

    def read_config(self) -> dict | None:
        """config.json, its names checked: ``model`` and ``dataset`` are strings where present."""
        config = self._read_json(self.CONFIG)
        for key in ("model", "dataset", "out"):
            if config is not None and key in config and not isinstance(config[key], (str, type(None))):
                raise CnnzooError(
                    f"{self.path / self.CONFIG}: {key!r} must be a name, got {config[key]!r}"[:300]
                )
        return config

    def read_result(self) -> dict | None:
        return self._read_json(self.RESULT)

    def read_metrics(self) -> list[dict]:
        path = self.path / self.METRICS
        if not path.exists():
            return []
        try:
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CnnzooError(f"{path}: corrupt JSON line ({e})") from None
