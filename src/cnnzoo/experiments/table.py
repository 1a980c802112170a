"""The experiments: one row per claim of the papers and courses the zoo follows.

An experiment is a module under :mod:`cnnzoo.experiments` with one function::

    run(out_dir: Path, quick: bool = False, seeds: int = 1, device: str = "auto", ...) -> dict

It writes ``report.md``, PNG plots and ``results.json`` into ``out_dir`` and returns the results document.
``quick=True`` must finish in about a minute on two CPU cores (the test suite runs every experiment so);
full runs take as long as the claim needs. Training experiments also take ``epochs`` and ``data_dir``.
Adding one: a module and a row here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CnnzooError

__all__ = ["ExperimentInfo", "EXPERIMENTS", "list_experiments", "get_experiment"]


@dataclass(frozen=True)
class ExperimentInfo:
    name: str
    module: str  # module under cnnzoo.experiments with run(out_dir, quick, seeds, device)
    source: str  # where the claim comes from: the course or book, and the paper
    claim: str


EXPERIMENTS = (
    ExperimentInfo("degradation", "degradation", "Ng's course; He et al. 2015, Fig. 1/6",
                   "a deeper plain net has higher training error than a shallower one; a residual net does not"),
    ExperimentInfo("lrn", "lrn", "the VGG paper: Simonyan & Zisserman 2014, Table 3",
                   "local response normalisation (VGG-A-LRN) brings no gain over VGG-A"),
    ExperimentInfo("small-kernels", "small_kernels", "the VGG paper: Simonyan & Zisserman 2014, Sec. 2.3",
                   "two 3×3 convs see 5×5 with 18C² weights instead of 25C² (28% fewer); three see 7×7 "
                   "with 27C² instead of 49C² (45% fewer), and train at least as well"),
    ExperimentInfo("bottleneck-1x1", "bottleneck_1x1", "Ng's course; Szegedy et al. 2014 (Inception)",
                   "a 1×1 bottleneck cuts the 5×5 conv's cost from 120,422,400 to 12,443,648 MACs (~10×)"),
    ExperimentInfo("lenet-activations", "lenet_activations", "d2l; LeCun et al. 1998",
                   "in LeNet-5, ReLU trains faster than sigmoid (vanishing gradients); tanh, max vs average pooling"),
    ExperimentInfo("dense-evaluation", "dense_evaluation", "the VGG paper: Simonyan & Zisserman 2014, Sec. 3.2",
                   "VGG's test-time FC→conv conversion gives the same scores and takes any input size"),
)  # fmt: skip


def list_experiments() -> list[ExperimentInfo]:
    """Every experiment, in the table's order."""
    return list(EXPERIMENTS)


def get_experiment(name: str) -> ExperimentInfo:
    for e in EXPERIMENTS:
        if e.name == name:
            return e
    names = ", ".join(e.name for e in EXPERIMENTS)
    raise CnnzooError(f"unknown experiment {name!r} (`cnnzoo experiment list` shows: {names})")
