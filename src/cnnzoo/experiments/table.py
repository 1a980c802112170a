"""The experiments: one per claim of the papers and courses the zoo follows, found like the commands.

An experiment is a module under :mod:`cnnzoo.experiments` that declares, once, ::

    NAME = "small-kernels"    # what `cnnzoo experiment NAME` runs
    SOURCE = "..."            # where the claim comes from: the course or book, and the paper
    CLAIM = "..."             # the claim it tests

    def run(out_dir: Path, quick: bool = False, seeds: int = 1, device: str = "auto", ...) -> dict

``run`` writes ``report.md``, PNG plots and ``results.json`` into ``out_dir`` and returns the results
document. ``quick=True`` must finish in about a minute on two CPU cores (the test suite runs every experiment
so); full runs take as long as the claim needs. Training experiments also take ``epochs`` and ``data_dir``.
Adding one: that module, nothing else (:func:`list_experiments` finds it).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

from ..errors import CnnzooError

__all__ = ["ExperimentInfo", "list_experiments", "get_experiment"]


@dataclass(frozen=True)
class ExperimentInfo:
    name: str
    module: str  # module under cnnzoo.experiments with run(out_dir, quick, seeds, device)
    source: str
    claim: str


def list_experiments() -> list[ExperimentInfo]:
    """Every experiment: the modules of this package that declare a ``CLAIM``, by module name."""
    package = __name__.rpartition(".")[0]
    found = []
    for info in sorted(pkgutil.iter_modules(importlib.import_module(package).__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        if hasattr(module, "CLAIM") and callable(getattr(module, "run", None)):
            found.append(ExperimentInfo(module.NAME, info.name, module.SOURCE, module.CLAIM))
    return found


def get_experiment(name: str) -> ExperimentInfo:
    experiments = list_experiments()
    for e in experiments:
        if e.name == name:
            return e
    names = ", ".join(e.name for e in experiments)
    raise CnnzooError(f"unknown experiment {name!r} (`cnnzoo experiment list` shows: {names})")
