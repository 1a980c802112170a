"""Shape arithmetic and the layer analyzer."""

from .arithmetic import conv_output_size, min_input_size, pool_output_size
from .summary import Summary, summary, trace

__all__ = ["conv_output_size", "pool_output_size", "min_input_size", "summary", "trace", "Summary"]
