"""The claims of the papers and courses the zoo follows, as runnable experiments (``cnnzoo experiment list``).

Each experiment module has ``run(out_dir, quick=False, seeds=1, device="auto", ...) -> dict`` and writes
``report.md``, PNG plots and ``results.json``. :mod:`.table` lists them, :mod:`.runner` runs one by name,
:mod:`.training` trains through :func:`cnnzoo.train.fit`, :mod:`.report` writes the outputs, :mod:`.stats`
averages over seeds.
"""

from .runner import run_experiment
from .table import ExperimentInfo, get_experiment, list_experiments

__all__ = ["ExperimentInfo", "get_experiment", "list_experiments", "run_experiment"]
