"""Per-epoch snapshots of a run: what the web app's Train page streams live and replays afterwards.

With ``TrainConfig.snapshots`` (``cnnzoo train --snapshots``) the run directory gets::

    snapshots/progress.jsonl   a "step" line whenever the trainer reports (every 20 steps and at the end of an
                               epoch: loss, accuracy, img/s, time left) and an "epoch" line per finished epoch
    snapshots/epoch-000.json   the initial weights, before any training
    snapshots/epoch-001.json   ... one per finished epoch, written atomically after its checkpoint

An epoch's snapshot is one small JSON document (tens of KB) whose pictures are PNG data URLs: conv1's
filters, the feature maps of one fixed test image at every layer (at most ``MAX_MAPS`` maps per layer,
averaged down to ``MAX_SIDE`` pixels), the epoch's metrics, and the confusion matrix and up to ``MAX_WRONG``
misclassified images on a fixed sample of the test set (its first ``SAMPLE`` images: the same images every
epoch, so the pictures are comparable from one epoch to the next).
"""

from __future__ import annotations

import base64
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write
from ..card import ModelCard
from ..config import TrainConfig
from ..tta import for_prediction

__all__ = ["SnapshotWriter", "snapshot_name", "SNAPSHOTS", "PROGRESS"]

SNAPSHOTS = "snapshots"
PROGRESS = "progress.jsonl"
SAMPLE = 1000  # test images evaluated per snapshot: ~0.1 s for a LeNet on one core
MAX_WRONG, MAX_MAPS, MAX_SIDE, MAX_LAYERS, MAX_FILTERS, MAX_CELLS = 16, 16, 28, 24, 64, 256
# Modules whose output replaces the row of the layer before them: the page shows what the next layer reads.
_FOLLOWERS = ("ReLU", "Tanh", "Sigmoid", "GELU", "SiLU", "ELU", "BatchNorm", "Dropout", "LocalResponseNorm")
_SKIPPED = ("Flatten", "Identity", "Unflatten", "AdaptiveAvgPool2d")


def snapshot_name(epoch: int) -> str:
    return f"epoch-{epoch:03d}.json"


class SnapshotWriter:
    """Writes a run's snapshots. ``images``/``labels`` are the evaluation images (uint8, N×C×H×W) of which
    the first ``SAMPLE`` are used; ``prepare`` is the trainer's preprocessing (called without a generator:
    no augmentation); ``card`` the model's, with the dataset's classes; ``cfg`` the run's options (its
    epochs); ``steps_per_epoch`` and ``batch`` (this process's training batch) give the time left."""

    def __init__(
        self,
        out: Path,
        model: nn.Module,
        prepare,
        images: torch.Tensor,
        labels: torch.Tensor,
        card: ModelCard,
        cfg: TrainConfig,
        *,
        steps_per_epoch: int,
        batch: int,
    ) -> None:
        self.dir = Path(out) / SNAPSHOTS
        self.model, self.prepare, self.classes, self.card = model, prepare, list(card.classes), card
        self.images, self.labels = images[:SAMPLE].cpu(), labels[:SAMPLE].cpu()
        self.epochs, self.steps, self.batch = cfg.epochs, steps_per_epoch, batch

    def start(self, start_epoch: int) -> None:
        """A fresh run: epoch 0's snapshot (the initial weights). A resumed one: forget what came after its
        last checkpoint (the interrupted epoch is trained again)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_progress(self.dir.parent) if r.get("epoch", 0) <= start_epoch]
        if start_epoch == 0:
            kept = []
        self._rewrite_progress(kept)
        for path in self.dir.glob("epoch-*.json"):
            if _epoch_of(path.name) is None or _epoch_of(path.name) > start_epoch:
                path.unlink(missing_ok=True)
        if start_epoch == 0:
            self.epoch({"epoch": 0})

    def step(self, epoch: int, step: int, loss: float, accuracy: float, images_per_second: float) -> None:
        """A progress line (``epoch`` counts from 1; ``step`` within it)."""
        left = ((self.epochs - epoch) * self.steps + self.steps - step) * self.batch
        self._append(
            {
                "kind": "step",
                "epoch": epoch,
                "step": step,
                "steps": self.steps,
                "epochs": self.epochs,
                "loss": _num(loss),
                "accuracy": _num(accuracy),
                "images_per_second": _num(images_per_second),
                "seconds_left": _num(left / images_per_second) if images_per_second > 0 else None,
                "time": time.time(),
            }
        )

    def epoch(self, record: dict) -> None:
        """The snapshot after epoch ``record["epoch"]`` (its line of metrics.jsonl) and its progress line."""
        epoch = int(record["epoch"])
        doc = {
            "epoch": epoch,
            "epochs": self.epochs,
            "classes": self.classes,
            "metrics": {k: _num(v) for k, v in record.items() if k != "epoch"},
        } | self._pictures()
        atomic_write(self.dir / snapshot_name(epoch), json.dumps(doc).encode(), fsync=False)
        if epoch > 0:
            self._append(
                {
                    "kind": "epoch",
                    "epochs": self.epochs,
                    "time": time.time(),
                    **doc["metrics"],
                    "epoch": epoch,
                    "sample_accuracy": doc["sample_accuracy"],
                }
            )

    # --- what a snapshot shows ------------------------------------------------------------------------------
    def _pictures(self) -> dict:
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                device = next(model.parameters()).device
                predictor = for_prediction(model, self.card)  # the predictions cnnzoo predict would give
                logits = torch.cat(
                    [
                        predictor(self.prepare(self.images[i : i + 500].to(device))).float().cpu()
                        for i in range(0, len(self.images), 500)
                    ]
                )
                layers = _layer_outputs(model, self.prepare(self.images[:1].to(device)))
        finally:
            model.train(was_training)
        pred = logits.argmax(1)
        n = len(self.classes)
        y = self.labels
        confusion = torch.bincount(y * n + pred.clamp(max=n - 1), minlength=n * n).view(n, n)
        probs = torch.softmax(logits, 1).max(1).values
        wrong = (pred != y).nonzero().flatten()[:MAX_WRONG].tolist()
        return {
            "sample": len(y),
            "sample_accuracy": float((pred == y).float().mean()) if len(y) else None,
            "confusion": confusion.tolist(),
            "wrong": [
                {
                    "png": _png(_hwc(self.images[i])),
                    "true": self.classes[int(y[i])],
                    "predicted": self.classes[int(pred[i])],
                    "probability": round(float(probs[i]), 3),
                }
                for i in wrong
            ],
            "input": {"png": _png(_hwc(self.images[0])), "label": self.classes[int(y[0])]},
            "filters": _filters(model),
            "layers": [_maps(name, kind, t[0].float().cpu()) for name, kind, t in layers],
        }

    # --- progress.jsonl -------------------------------------------------------------------------------------
    def _append(self, line: dict) -> None:
        # appended, not rewritten: a reader ignores a half-written last line
        with open(self.dir / PROGRESS, "a") as f:
            f.write(json.dumps(line) + "\n")

    def _rewrite_progress(self, lines: list[dict]) -> None:
        atomic_write(self.dir / PROGRESS, "".join(json.dumps(r) + "\n" for r in lines).encode(), fsync=False)


def read_progress(run_dir: Path, start: int = 0) -> list[dict]:
    """The progress lines of a run from byte offset ``start`` (a half-written last line is left out)."""
    path = Path(run_dir) / SNAPSHOTS / PROGRESS
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read()
    except OSError:
        return []
    lines = []
    for raw in data.split(b"\n")[:-1]:
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def _epoch_of(name: str) -> int | None:
    stem = name.removeprefix("epoch-").removesuffix(".json")
    return int(stem) if stem.isdigit() else None


def _num(v):
    return round(v, 6) if isinstance(v, float) and math.isfinite(v) else (None if isinstance(v, float) else v)


def _layer_outputs(model: nn.Module, x: torch.Tensor) -> list[tuple[str, str, torch.Tensor]]:
    """(name, type, output) of every layer in the order the forward pass runs them; an activation, norm or
    dropout replaces the output of the layer before it (``c1`` shows tanh(conv))."""
    rows: list[list] = []
    handles = []

    def hook(name: str, kind: str):
        def record(module, inputs, output):
            if not isinstance(output, torch.Tensor):
                return
            if any(word in kind for word in _FOLLOWERS):
                if rows and rows[-1][2].shape == output.shape:
                    rows[-1][2] = output
            elif kind not in _SKIPPED:
                rows.append([name, kind, output])

        return record

    for name, m in model.named_modules():
        if name and not any(True for _ in m.children()):
            handles.append(m.register_forward_hook(hook(name, type(m).__name__)))
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return [tuple(r) for r in rows[:MAX_LAYERS]]


def _maps(name: str, kind: str, t: torch.Tensor) -> dict:
    """One layer's output for one image as a grid of grey maps (signed: 0 is mid-grey)."""
    shape = list(t.shape)
    if t.dim() == 3 and t.shape[1] * t.shape[2] == 1:
        t = t.flatten()
    if t.dim() == 3:
        t = t[:MAX_MAPS]
        if max(t.shape[1:]) > MAX_SIDE:
            t = nn.functional.adaptive_avg_pool2d(t[None], MAX_SIDE)[0]
    else:
        cells = t.flatten()[:MAX_CELLS]
        side = min(len(cells), 16)
        t = torch.full((side * math.ceil(len(cells) / side),), float("nan"))
        t[: len(cells)] = cells
        t = t.view(1, -1, side)
    return {"name": name, "type": kind, "shape": shape, "png": _png(_grid(_to_u8(t), cols=8))}


def _filters(model: nn.Module) -> dict | None:
    """The first convolution's kernels, each scaled on its own (0 is mid-grey); colour for RGB inputs."""
    conv = next(
        (m for m in model.modules() if getattr(m, "weight", None) is not None and m.weight.dim() == 4), None
    )
    if conv is None:
        return None
    w = conv.weight.detach().float().cpu()[:MAX_FILTERS]
    w = w if w.shape[1] == 3 else w[:, :1]
    scale = w.abs().flatten(1).max(1).values.clamp(min=1e-12).view(-1, 1, 1, 1)
    u8 = (w / scale * 127.5 + 127.5).round().clamp(0, 255).to(torch.uint8)
    return {"shape": list(conv.weight.shape), "png": _png(_grid(u8, cols=min(8, len(u8)), gap=1))}


def _to_u8(t: torch.Tensor) -> torch.Tensor:
    """(maps, H, W) floats -> (maps, 1, H, W) uint8 scaled together; NaN (no cell) is black."""
    finite = t[torch.isfinite(t)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.numel() else (0.0, 0.0)
    if lo < 0:
        u = t / (max(-lo, hi) or 1.0) * 127.5 + 127.5
    else:
        u = t / (hi or 1.0) * 255
    return torch.nan_to_num(u, nan=0.0).round().clamp(0, 255).to(torch.uint8)[:, None]


def _grid(u8: torch.Tensor, cols: int, gap: int = 1) -> np.ndarray:
    """(N, C, h, w) uint8 tiles -> one H×W(×3) image, ``cols`` per row, separated by white gaps."""
    n, c, h, w = u8.shape
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, c), 255, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, k * (w + gap) : k * (w + gap) + w] = _hwc(u8[i])
    return out


def _hwc(img: torch.Tensor) -> np.ndarray:
    return img.permute(1, 2, 0).numpy()


def _png(arr: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
