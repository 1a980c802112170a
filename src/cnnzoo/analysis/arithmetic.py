"""Deprecated home of the output-size arithmetic: it lives in :mod:`cnnzoo.shapes` (below the models)."""

from ..shapes import (  # noqa: F401
    conv_output_size,
    min_input_for_chain,
    min_input_size,
    output_shape_2d,
    pair,
    pool_output_size,
    same_padding,
)

__all__ = [
    "conv_output_size",
    "pool_output_size",
    "same_padding",
    "min_input_size",
    "min_input_for_chain",
    "output_shape_2d",
    "pair",
]
