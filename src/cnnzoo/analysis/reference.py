"""The analyzer's reference: the same rows from plain forward hooks on a deep meta copy — slow, but with
nothing to get wrong. The tests hold the fast analyzer (:mod:`cnnzoo.analysis.summary`) to it on every zoo
model; it is not used otherwise.

Each leaf-module call gives ``(name, type, output shape, params, MACs, FLOPs, connections)``: the name with
``#2``, ``#3`` … for repeated calls, the shape without the batch dimension, the parameters on the module's
first call only, the costs by the analyzer's cost rules (:mod:`cnnzoo.analysis.rules`) from the real shapes.
Operations outside leaf modules (residual additions) are not seen by hooks, and not listed.
"""

from __future__ import annotations

import copy
import math
from functools import partial

import torch
from torch import nn

from .rules import cost_rule

__all__ = ["reference_rows"]


def reference_rows(model: nn.Module, input_size: tuple[int, int, int]) -> list[tuple]:
    """One row per leaf call of ``model`` on one meta input of ``input_size`` (C, H, W)."""
    work = copy.deepcopy(model).to("meta").eval()
    rows: list[tuple] = []
    calls: dict[str, int] = {}
    seen: set[int] = set()

    def record(module: nn.Module, args, out, name: str) -> None:
        n = calls[name] = calls.get(name, 0) + 1
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        new = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in new)
        out_n = math.prod(out.shape[1:])
        in_n = math.prod(x.shape[1:]) if x is not None else out_n
        macs, flops, connections = cost_rule(module)(in_n, out_n)
        rows.append(
            (
                name if n == 1 else f"{name}#{n}",
                type(module).__name__,
                list(out.shape[1:]),
                sum(p.numel() for p in new),
                macs,
                flops,
                connections,
            )
        )

    leaves = [(n or type(m).__name__, m) for n, m in work.named_modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(partial(record, name=n)) for n, m in leaves]
    try:
        with torch.no_grad():
            work(torch.empty((1, *input_size), device="meta"))
    finally:
        for h in handles:
            h.remove()
    return rows
