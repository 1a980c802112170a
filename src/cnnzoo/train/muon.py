"""Muon for convolutional nets: orthogonalised momentum for the hidden layers' weights, Nesterov SGD for the
rest (``--optimizer muon``).

Muon (Jordan et al. 2024, "Muon: an optimizer for hidden layers in neural networks") replaces the momentum
of a weight matrix's gradient by the nearest semi-orthogonal matrix (about ``U Vᵀ`` of its SVD ``U S Vᵀ``,
from five Newton-Schulz steps), so every direction of the layer moves at the same rate instead of the few
that dominate the raw gradient. It is meant for the hidden layers: for a convnet, all the convolutional filters
(Jordan's Muon README), while the classifier's output layer and the biases keep an ordinary optimizer.

``torch.optim.Muon`` implements it for 2-D parameters and refuses the others; a convolution's filters
(out, in, kh, kw) are a matrix (out, in·kh·kw), as Jordan's Muon package flattens them. :class:`MuonSGD` applies
exactly torch's update to that view (``tests/test_muon.py`` checks it against ``torch.optim.Muon`` on 2-D
weights), and Nesterov SGD (torch's) to the output layer and the 1-D parameters. One optimizer with one set of
param groups, so fit's schedules, checkpoints and resumption treat it like any other.

On lenet5_modern and Fashion-MNIST (docs/training.md, "Fewer epochs?") 6 epochs of it end at 92.1%, where
the best SGD recipes of 6 to 12 epochs ended at 91.0-91.5%. Its cost: five Newton-Schulz steps per hidden
layer and step, as much arithmetic as LeNet-5's own forward and backward pass at batch 64.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.sgd import sgd  # torch.optim.SGD's step as a function (public: torch.optim.sgd.__all__)

from ..config import MUON_LAYERS

__all__ = ["MuonSGD", "muon_groups", "orthogonalise", "NS_COEFFICIENTS"]

# torch.optim.Muon's (Jordan's) quintic Newton-Schulz coefficients, 5 steps, and its eps
NS_COEFFICIENTS, NS_STEPS, EPS = (3.4445, -4.7750, 2.0315), 5, 1e-7


def orthogonalise(g: torch.Tensor, bf16: bool = True) -> torch.Tensor:
    """About ``U Vᵀ`` of a 2-D ``g = U S Vᵀ`` (singular values mapped into roughly 0.7..1.2, which Jordan found
    as good as exactly 1), computed as torch.optim.Muon does: in bf16, the wide orientation, five quintic
    Newton-Schulz steps from ``g / ‖g‖_F``. ``bf16=False`` does the same in fp32, for CPUs without bf16 units
    (where oneDNN emulates bf16, slowly)."""
    a, b, c = NS_COEFFICIENTS
    x = g.bfloat16() if bf16 else g.float()
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T
    x = x.div(x.norm().clamp(min=EPS))
    for _ in range(NS_STEPS):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


def muon_groups(
    model: nn.Module, groups: list[dict], muon_lr: float, lr: float | None = None, layers: str = "hidden"
) -> list[dict]:
    """``groups`` (:func:`cnnzoo.train.optim.param_groups`) with the weights of every layer but the last
    moved to a Muon group at ``muon_lr``: the multi-dimensional trainable parameters before the classifier's
    (``layers="conv"``: the convolutions' filters only, the fully connected layers staying with SGD).
    A group with a learning rate of its own (``--lr-backbone``) gets ``muon_lr`` scaled as its lr is to ``lr``."""
    if layers not in MUON_LAYERS:
        raise ValueError(f"layers must be one of {', '.join(MUON_LAYERS)}, not {layers!r}")
    weights = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    hidden = {id(p) for p in weights[:-1] if layers == "hidden" or p.ndim > 2}  # the last: the output layer's
    out = []
    for group in groups:  # each group's SGD part first: group 0's lr is --lr, the one the metrics report
        muon = [p for p in group["params"] if id(p) in hidden]
        scale = group["lr"] / lr if "lr" in group and lr else 1.0
        out.append(group | {"params": [p for p in group["params"] if id(p) not in hidden], "muon": False})
        out.append(group | {"params": muon, "muon": True, "lr": muon_lr * scale})
    return [g for g in out if g["params"]]


class MuonSGD(torch.optim.Optimizer):
    """Muon (torch.optim.Muon's update, on each weight viewed as (out, rest)) for the groups marked ``muon``,
    SGD with (Nesterov) momentum (torch.optim.SGD's update) for the others. Weight decay is decoupled for
    Muon (``w ← w·(1 − lr·wd)``, as torch's Muon) and an L2 term for SGD (as torch's SGD)."""

    def __init__(
        self, groups: list[dict], lr: float, momentum: float = 0.9, nesterov: bool = True, bf16: bool = True
    ) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), not {momentum}")
        self.bf16 = bf16  # the Newton-Schulz products in bf16 (torch.optim.Muon's choice) or fp32
        super().__init__(
            groups, {"lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": 0.0, "muon": False}
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if group["muon"]:
                self._muon(group, params)
            elif params:  # torch's SGD, as torch.optim.SGD.step calls it
                bufs = [self.state[p].get("momentum_buffer") for p in params]
                sgd(
                    params,
                    [p.grad for p in params],
                    bufs,
                    weight_decay=group["weight_decay"],
                    momentum=group["momentum"],
                    lr=group["lr"],
                    dampening=0.0,
                    nesterov=group["nesterov"],
                    maximize=False,
                )
                for p, buf in zip(params, bufs, strict=True):
                    self.state[p]["momentum_buffer"] = buf
        return loss

    def _muon(self, group: dict, params: list[torch.Tensor]) -> None:
        lr, wd, m = group["lr"], group["weight_decay"], group["momentum"]
        for p in params:
            g = p.grad.reshape(len(p), -1)
            buf = self.state[p].get("momentum_buffer")
            if buf is None:
                buf = self.state[p]["momentum_buffer"] = torch.zeros_like(g)
            buf.lerp_(g, 1 - m)
            update = orthogonalise(g.lerp(buf, m) if group["nesterov"] else buf, self.bf16)
            p.mul_(1 - lr * wd)
            p.add_(update.view_as(p), alpha=-lr * math.sqrt(max(1, g.size(0) / g.size(1))))
