"""``run_experiment``: run one experiment of the table (:mod:`.table`) by name."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from ..errors import CnnzooError
from .table import ExperimentInfo, get_experiment, list_experiments

__all__ = ["ExperimentInfo", "list_experiments", "get_experiment", "run_experiment"]


def run_experiment(
    name: str,
    out_dir: str | Path | None = None,
    quick: bool = False,
    seeds: int = 1,
    device: str = "auto",
    epochs: int | None = None,
    data_dir: str | None = None,
) -> dict:
    """Run experiment ``name``; ``out_dir`` defaults to ``runs/experiments/NAME``. ``epochs`` overrides a
    training experiment's default number of epochs (only experiments whose ``run`` takes it); ``data_dir`` is
    the folder searched first for the dataset files (experiments that read no dataset ignore it)."""
    info = get_experiment(name)
    if seeds < 1:
        raise CnnzooError(f"--seeds must be at least 1, got {seeds}")
    out = Path(out_dir) if out_dir else Path("runs") / "experiments" / name
    module = importlib.import_module(f"{__package__}.{info.module}")
    takes = inspect.signature(module.run).parameters
    extra = {}
    if epochs is not None:
        if epochs < 1 or "epochs" not in takes:
            raise CnnzooError(
                f"experiment {name!r} does not take --epochs {epochs} (it trains nothing or epochs < 1)"
            )
        extra["epochs"] = epochs
    if data_dir is not None and "data_dir" in takes:
        extra["data_dir"] = data_dir
    out.mkdir(parents=True, exist_ok=True)
    return module.run(out, quick=quick, seeds=seeds, device=device, **extra)
