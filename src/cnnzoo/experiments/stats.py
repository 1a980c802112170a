"""The numbers the experiments report: mean ± std over seeds, and per-epoch curves averaged over seeds."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["mean_std", "aggregate"]


def mean_std(values: Sequence[float]) -> dict:
    """Mean and sample standard deviation (0 for a single value), with the values kept."""
    vals = [float(v) for v in values]
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {"mean": statistics.fmean(vals), "std": std, "n": len(vals), "values": vals}


def aggregate(histories: Sequence[dict], last: int = 1) -> dict:
    """Per-epoch mean curves over seeds, and mean ± std of the final errors (mean of the ``last`` epochs).
    ``histories`` are :func:`cnnzoo.experiments.training.curves` dicts, one per seed."""
    import numpy as np

    out: dict = {"seeds": len(histories), "params": histories[0]["params"]}
    for key in ("train_loss", "train_error", "test_loss", "test_error"):
        curves = np.array([h[key] for h in histories], dtype=float)  # (seeds, epochs)
        out[f"{key}_curve"] = curves.mean(0).tolist()
        out[f"final_{key}"] = mean_std(curves[:, -last:].mean(1))
    out["seconds_per_epoch"] = float(np.mean([np.mean(h["epoch_seconds"]) for h in histories]))
    out["histories"] = list(histories)
    return out
