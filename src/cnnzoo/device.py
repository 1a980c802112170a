"""The machine a run uses: which device (``--device``) and the random seeds.

``cnnzoo train``, ``cnnzoo experiment``, ``cnnzoo eval`` and the Python API all resolve ``--device`` here, so
every command accepts the same names: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` and ``mps``.
"""

from __future__ import annotations

import random

import torch

from .errors import CnnzooError

__all__ = ["resolve_device", "seed_everything"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` is the CUDA GPU, else Apple's GPU (MPS), else the CPU; a bare ``cuda`` is this process's GPU
    (``local_rank`` under torchrun). A device that is not there is a one-line :class:`CnnzooError`."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CnnzooError(f"device {name!r}: no CUDA GPU is available here (use --device cpu or auto)")
        if name == "cuda":
            name = f"cuda:{local_rank}"
    elif name == "mps":
        if not _mps_available():
            raise CnnzooError("device 'mps': no Apple GPU (MPS) is available here (use --device cpu or auto)")
    elif name != "cpu":
        raise CnnzooError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    try:
        return torch.device(name)
    except RuntimeError:  # "cuda:x"
        raise CnnzooError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (the initial weights, dropout)."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
