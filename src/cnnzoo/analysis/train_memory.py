"""Training memory, predicted without data: per layer, the activations autograd keeps for the backward
pass, the gradients and the optimizer's state, and the peak of one training step.

A meta copy of the model runs one forward in training mode with gradients on, as a training step does;
``torch.autograd.graph.saved_tensors_hooks`` sees every tensor autograd saves for the backward pass (each
counted once, the parameters left out: they are counted as parameters), attributed to the module whose
forward saved it. Nothing is computed and nothing is allocated.

The peak of a step is at the start of the backward pass: the parameters, the optimizer's state (kept from
the previous step), every saved activation, and the gradients as they are written (they are freed only by
the next ``zero_grad``). Left out: the allocator's rounding and caching, temporary buffers inside a kernel
(im2col, cuDNN/oneDNN workspaces), the input batch's own copy in the data loader, and the framework's
fixed overhead (the CUDA context, ~300–500 MiB on a GPU).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ShapeError
from ..models.source import check_model_arg, resolve_model
from ..shapes import parse_input_size

__all__ = ["TrainMemory", "train_memory", "estimate_train_memory", "OPTIMIZER_STATE"]

# Tensors of state per trainable parameter: SGD's momentum buffer, Adam's two moments, Muon's momentum
OPTIMIZER_STATE = {"sgd": 1, "adam": 2, "adamw": 2, "muon": 1}


@dataclass
class TrainMemory:
    """Bytes of one training step for ``batch_size`` inputs; ``layers``: name -> activation bytes saved
    for the backward pass by that module's forward (functional code of a container under its name)."""

    batch_size: int
    optimizer: str
    params: int
    gradients: int
    optimizer_state: int
    activations: int
    layers: dict[str, int] = field(default_factory=dict)

    @property
    def peak(self) -> int:
        return self.params + self.gradients + self.optimizer_state + self.activations

    def to_dict(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "params": self.params,
            "gradients": self.gradients,
            "optimizer_state": self.optimizer_state,
            "activations": self.activations,
            "peak": self.peak,
            "layers": dict(self.layers),
        }


def _meta_model(model_or_name) -> nn.Module:
    if isinstance(model_or_name, str):  # any model argument: a zoo name, a layer string, FILE.py:NAME...
        check_model_arg(model_or_name)
        with torch.device("meta"):
            return resolve_model(model_or_name)
    return copy.deepcopy(model_or_name).to("meta")


def train_memory(model_or_name, input_size, batch_size: int = 1, optimizer: str = "sgd") -> TrainMemory:
    """The memory of one training step (see the module's docstring for what is counted and left out)."""
    if optimizer not in OPTIMIZER_STATE:
        raise ShapeError(f"unknown optimizer {optimizer!r}: one of {', '.join(OPTIMIZER_STATE)}")
    if batch_size < 1:
        raise ShapeError(f"batch size must be at least 1, not {batch_size}")
    model = _meta_model(model_or_name).train()
    size = parse_input_size(input_size)
    params = list(model.parameters())
    param_ids = {id(p) for p in params}
    stack: list[str] = [""]
    layers: dict[str, int] = {}
    seen: set[int] = set()

    def pre(name):
        return lambda module, args: stack.append(name)

    def post(module, args, out):
        stack.pop()

    handles = []
    for name, m in model.named_modules():
        if name:
            handles += [m.register_forward_pre_hook(pre(name)), m.register_forward_hook(post)]

    def pack(t: torch.Tensor):
        base = t if t._base is None else t._base
        if id(base) not in param_ids and id(base) not in seen:
            seen.add(id(base))
            keep.append(base)  # ids stay unique while the step is alive
            layers[stack[-1]] = layers.get(stack[-1], 0) + base.numel() * base.element_size()
        return t

    keep: list[torch.Tensor] = []
    x = torch.empty((batch_size, *size), device="meta")
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
    except RuntimeError as e:
        raise ShapeError(f"the forward pass fails for input {'×'.join(map(str, size))}: {e}") from None
    finally:
        for h in handles:
            h.remove()
    n_bytes = sum(p.numel() * p.element_size() for p in params)
    trainable = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    return TrainMemory(
        batch_size,
        optimizer,
        n_bytes,
        trainable,
        OPTIMIZER_STATE[optimizer] * trainable,
        sum(layers.values()),
        layers,
    )


def _mib(n: int) -> str:
    return f"{n / 2**20:,.2f} MiB"


def to_text(m: TrainMemory) -> str:
    """The per-layer activations and the parts of the peak, one line each."""
    width = max((len(k or "(model)") for k in m.layers), default=7)
    lines = [f"training memory, batch {m.batch_size}, {m.optimizer}: activations kept for the backward pass"]
    lines += [f"  {k or '(model)':<{width}}  {_mib(v):>14}" for k, v in m.layers.items()]
    lines += [
        f"parameters {_mib(m.params)} + gradients {_mib(m.gradients)} + optimizer state "
        f"{_mib(m.optimizer_state)} ({OPTIMIZER_STATE[m.optimizer]} per trainable parameter) + activations "
        f"{_mib(m.activations)} = peak {_mib(m.peak)} (without allocator caching, kernel workspaces, the "
        "data loader's batch; docs/analyzer.md)"
    ]
    return "\n".join(lines)


def estimate_train_memory(model, input_size, batch_size: int, optimizer: str = "sgd") -> int:
    """The predicted peak bytes of one training step (parameters, gradients, optimizer state, activations
    kept for the backward pass) for ``batch_size`` inputs of ``input_size`` (C, H, W)."""
    return train_memory(model, input_size, batch_size, optimizer).peak
