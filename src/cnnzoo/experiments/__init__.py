"""The seeds' claims as runnable experiments (``cnnzoo experiment list``).

Each experiment module has ``run(out_dir, quick=False, seeds=1, device="auto") -> dict`` and writes
``report.md``, PNG plots and ``results.json``; :mod:`.runner` holds the registry and shared helpers.
"""

from .runner import ExperimentInfo, get_experiment, list_experiments, run_experiment

__all__ = ["ExperimentInfo", "get_experiment", "list_experiments", "run_experiment"]
