"""How much memory a training run needs, checked before it starts: a batch size the machine cannot hold is
one line with the estimate and the limit, not an "internal error: can't allocate memory" minutes in.

The estimate is the analyzer's training-memory figure (:func:`cnnzoo.analysis.train_memory.
estimate_train_memory`: parameters, gradients, the optimizer's state and the activations autograd keeps for
the backward pass, the predicted peak of one step). The limit is what the device can still give:
``MemAvailable`` of ``/proc/meminfo`` for the CPU, ``torch.cuda.mem_get_info`` for a GPU.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CnnzooError

__all__ = ["TrainMemoryError", "memory_limit", "check_train_memory"]


class TrainMemoryError(CnnzooError):
    """A run whose estimated memory exceeds what the device has."""


def memory_limit(device: str | torch.device | None = None) -> int | None:
    """Bytes the device can still give (None where it cannot be told)."""
    device = torch.device(device) if device not in (None, "auto") else None
    if (device is None and torch.cuda.is_available()) or (device is not None and device.type == "cuda"):
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_train_memory(
    model: nn.Module | str,
    input_size: tuple[int, int, int],
    batch_size: int,
    device=None,
    optimizer: str = "sgd",
) -> int:
    """The analyzer's estimate, or :class:`TrainMemoryError` when it is over the device's limit. An optimizer
    the analyzer has no state figure for (sdlm) is estimated as SGD."""
    from ..analysis.train_memory import OPTIMIZER_STATE, estimate_train_memory

    optimizer = optimizer if optimizer in OPTIMIZER_STATE else "sgd"
    need = estimate_train_memory(model, tuple(input_size), batch_size, optimizer)
    limit = memory_limit(device)
    if limit is not None and need > limit:
        name = model if isinstance(model, str) else type(model).__name__
        raise TrainMemoryError(
            f"training {name} at batch size {batch_size} needs about {need / 2**30:,.1f} GiB "
            "(parameters, gradients, optimizer state and the activations kept for backward), more than the "
            f"{limit / 2**30:,.1f} GiB available; use a smaller --batch-size"
        )
    return need
