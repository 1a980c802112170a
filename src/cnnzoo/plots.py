"""Every figure cnnzoo draws: training curves and confusion matrices, the experiments' figures.

Matplotlib runs with its non-interactive Agg backend (no display needed, safe in threads and workers), and
every PNG is written through :func:`cnnzoo.atomic.atomic_write`: a reader sees the old figure or the new
one, never half of one.
"""

from __future__ import annotations

import io
from pathlib import Path

from .atomic import atomic_write

__all__ = ["pyplot", "new_figure", "save_figure", "write_png", "plot_curves", "plot_confusion"]


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_png(fig, path: str | Path, dpi: int = 100) -> Path:
    """Save ``fig`` as a PNG at ``path`` atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    atomic_write(Path(path), buf.getvalue(), fsync=False)
    return Path(path)


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.6, nrows: int = 1):
    """A figure with ``ncols`` panels side by side (``nrows`` rows of them): ``(fig, [ax, ...])``, row by row."""
    fig, axes = pyplot().subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, [ax for row in axes for ax in row]


def save_figure(fig, out_dir: str | Path, filename: str) -> str:
    """An experiment's figure: tight layout, ``out_dir/filename`` at 110 dpi; returns ``filename`` (for the
    report's link)."""
    fig.tight_layout()
    write_png(fig, Path(out_dir) / filename, dpi=110)
    return filename


def plot_curves(epochs: list[dict], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch (the lines of metrics.jsonl), training and validation, side by side."""
    plt = pyplot()
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
    return write_png(fig, path)


def plot_confusion(confusion, classes: list[str], path: str | Path, title: str = "") -> Path:
    """A (true × predicted) count matrix as a heat map, counts in the cells, rows = true class."""
    plt = pyplot()
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
                ax.text(
                    j,
                    i,
                    int(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if cm[i, j] > top / 2 else "black",
                )
    ax.set_title(title or "confusion matrix (test)")
    fig.tight_layout()
    return write_png(fig, path)


# -- the fully convolutional form's score maps (cnnzoo.convert, cnnzoo.dense) ----------------------------

__all__ += ["save_heatmap"]


def save_heatmap(
    image,
    score_map,
    class_index: int,
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Write a PNG: the tensor ``image`` (C, H, W) with the class ``class_index`` channel of ``score_map``
    ((classes, h, w) or (1, classes, h, w)) upsampled over it, showing where that class scores high."""
    import torch.nn.functional as F

    from .errors import ShapeError

    img = image.detach().float().cpu()
    img = img.unsqueeze(0) if img.dim() == 2 else img
    smap = score_map.detach().float().cpu()
    smap = smap[0] if smap.dim() == 4 else smap
    if not 0 <= class_index < smap.shape[0]:
        raise ShapeError(f"class_index {class_index} is outside the score map's {smap.shape[0]} classes")
    heat = F.interpolate(
        smap[class_index][None, None], size=img.shape[-2:], mode="bilinear", align_corners=False
    )
    heat = heat[0, 0].numpy()
    shown = (img - img.min()) / (img.max() - img.min()).clamp_min(1e-12)  # preprocessed images: min-max
    shown = shown[0].numpy() if shown.shape[0] == 1 else shown.permute(1, 2, 0).numpy()

    fig, (ax,) = new_figure(width=4.2, height=3.6)
    ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
    overlay = ax.imshow(heat, cmap="jet", alpha=0.45, vmin=min(0.0, heat.min()), vmax=max(1.0, heat.max()))
    fig.colorbar(overlay, ax=ax, fraction=0.046, pad=0.04, label="class score")
    ax.set_title(title or f"class {class_index}: score map {smap.shape[1]}×{smap.shape[2]}", fontsize=9)
    ax.axis("off")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    return write_png(fig, path, dpi=110)
