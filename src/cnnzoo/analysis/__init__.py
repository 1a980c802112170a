"""The layer analyzer (the shape arithmetic it uses lives in :mod:`cnnzoo.shapes`, below the models)."""

from ..shapes import conv_output_size, min_input_size, pool_output_size
from .summary import Summary, summary, trace
from .train_memory import estimate_train_memory, train_memory

__all__ = [
    "conv_output_size",
    "pool_output_size",
    "min_input_size",
    "summary",
    "trace",
    "Summary",
    "estimate_train_memory",
    "train_memory",
]
