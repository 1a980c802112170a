"""The stochastic diagonal Levenberg-Marquardt method of LeCun et al. 1998 (Appendix C; settings in §III.C).

Each parameter ``w_k`` gets its own step size ``ε_k = η / (μ + h_kk)``, where ``h_kk`` estimates the
second derivative of the per-pattern loss with respect to ``w_k`` and ``μ`` (0.02 in the paper) keeps the
step bounded where the curvature is tiny. The paper re-estimates ``h_kk`` on 500 patterns before every pass
over the training set and keeps it fixed during the pass; ``η`` follows an epoch-wise table (the
``lenet1998`` schedule in :mod:`cnnzoo.train.optim`).

How ``h_kk`` is estimated here, and how that differs from the paper:

- The paper backpropagates second derivatives with the Gauss-Newton approximation and, in addition, drops
  the off-diagonal terms at every layer (``∂²E/∂a² ≈ f'(a)² Σ w² ∂²E/∂x²``): a cheap approximation of the
  diagonal of the Gauss-Newton matrix, computed in one extra backward pass per pattern.
- We compute an unbiased Monte-Carlo estimate of the *exact* diagonal of the Gauss-Newton matrix instead,
  with ordinary backpropagation: for a network output ``x`` with Jacobian ``J`` and a loss Hessian ``H`` in
  ``x``, ``diag(Jᵀ H J) = E_v[(Jᵀ v)²]`` for any random ``v`` with ``E[v vᵀ] = H``; ``Jᵀ v`` is the
  gradient of ``v·x``, so one backward pass per pattern gives one squared per-pattern gradient, and the mean
  over the 500 patterns is the estimate.
  - For a network ending in :class:`~cnnzoo.layers.RBFOutput` (LeNet-5) ``x`` is F6's output and ``H = 2I``:
    the Hessian of the distance to the correct class's centre ``y_D = ||x - w_D||²``. That is the whole
    Hessian of the paper's loss (eq. 9) in ``x`` while the "rubbish" term dominates (at the start of
    training); later the competing classes add a positive semi-definite term that we leave out, as the
    Gauss-Newton approximation of the paper leaves out second-order terms. ``v`` is ±√2 (Rademacher × √2).
  - For any other network (softmax cross-entropy on logits ``z``), ``H = diag(p) - p pᵀ`` and ``v = e_c - p``
    with a class ``c`` drawn from the model's own prediction ``p``: the squared gradient of the loss with a
    *sampled* target (the "Monte-Carlo Fisher", which equals the Gauss-Newton matrix for this loss). The
    squared gradient with the *true* target (the "empirical Fisher") is not used: it goes to 0 as the fit
    improves and would make every step size η/μ.
  Both are exact in expectation and noisier per pattern than the paper's deterministic approximation; with
  500 patterns the noise is small next to ``μ``.
- The patterns are drawn (seeded) from the training set, without augmentation, with the model in ``eval()``
  mode (dropout off) and in fp32.

The loss we minimise is the *mean* over a batch, so with a batch of B the step is ``η/(μ+h)·mean gradient``,
where the paper took B=1 steps of ``η/(μ+h)·gradient`` on each pattern: the paper's η times B would give the
same progress per pass while ``η·B`` stays small. With this estimate of h neither the paper's η at B=1 nor
η·32 at B=32 trained LeNet-5 here (it collapsed to one class); the ``paper`` recipe uses B=32 and η 0.0002
(docs/training.md, "LeNet-5 as in 1998", has the runs).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CnnzooError
from ..layers import RBFOutput, SparseConv2d, Subsampling
from .data import epoch_generator

__all__ = ["SDLM", "estimate_curvature", "before_pass", "PAPER_MU", "PAPER_SAMPLES"]

PAPER_MU = 0.02  # §III.C: "The parameter μ was set to 0.02"
PAPER_SAMPLES = 500  # §III.C: "re-evaluated on 500 samples" before each pass
_CURVATURE_STREAM = 1008  # epoch_generator stream of the curvature samples (augmentation uses 1 + rank)


class SDLM(torch.optim.Optimizer):
    """``w_k ← w_k - η / (μ + h_kk) · g_k``, with ``h_kk`` set by :meth:`estimate` (or :meth:`set_curvature`).

    ``lr`` is η. ``weight_decay`` adds ``weight_decay · w`` to the gradient (an L2 term; the paper has none).
    A step before any estimate is an error: with ``h = 0`` every step would be η/μ = 50 η.
    """

    def __init__(self, params, lr: float = 5e-4, mu: float = PAPER_MU, weight_decay: float = 0.0) -> None:
        if lr <= 0 or mu <= 0 or weight_decay < 0:
            raise CnnzooError(
                f"SDLM needs lr > 0, mu > 0, weight_decay >= 0 (got {lr}, {mu}, {weight_decay})"
            )
        super().__init__(params, dict(lr=lr, mu=mu, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["mu"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                h = self.state[p].get("h")
                if h is None:
                    raise CnnzooError(
                        "SDLM has no curvature estimate yet: call optimizer.estimate(model, images, prepare) "
                        "before the first step (cnnzoo.fit does it before every epoch)"
                    )
                g = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
                p.addcdiv_(g, h + mu, value=-lr)
        return loss

    def set_curvature(self, curvature: dict[nn.Parameter, torch.Tensor]) -> None:
        """Use ``curvature[p]`` (same shape as ``p``, ≥ 0) as ``h`` for each parameter ``p``."""
        for group in self.param_groups:
            for p in group["params"]:
                if p in curvature:
                    self.state[p]["h"] = curvature[p].detach().to(p.device, p.dtype).clamp_min(0)

    def estimate(
        self,
        model: nn.Module,
        images: torch.Tensor,
        prepare: Callable[[torch.Tensor], torch.Tensor],
        generator: torch.Generator | None = None,
        samples: int = PAPER_SAMPLES,
    ) -> None:
        """Re-estimate ``h`` on ``samples`` training patterns (:func:`estimate_curvature`)."""
        self.set_curvature(estimate_curvature(model, images, prepare, generator, samples))

    def step_sizes(self) -> torch.Tensor:
        """Every parameter's current ``η / (μ + h)``, flattened (the paper quotes their range)."""
        sizes = [
            group["lr"] / (group["mu"] + self.state[p]["h"]).flatten()
            for group in self.param_groups
            for p in group["params"]
            if "h" in self.state[p]
        ]
        return torch.cat(sizes) if sizes else torch.empty(0)


def _rbf_layer(model: nn.Module) -> RBFOutput | None:
    rbfs = [m for m in model.modules() if isinstance(m, RBFOutput)]
    return rbfs[-1] if rbfs else None


_CONNECTED = (nn.Conv2d, nn.Linear, SparseConv2d, Subsampling)  # layers whose h is summed per connection


def _connection_sums(m: nn.Module, x: torch.Tensor, d2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(h of m.weight, h of m.bias) = Σ over the connections of each weight of ``d2 · input²`` (the paper's sum
    over the units that share a weight), with ``d2`` the second derivative at m's outputs."""
    x2 = x.float().square()
    if isinstance(m, nn.Linear):
        return d2.t() @ x2, d2.sum(0)
    bias = d2.sum((0, 2, 3))
    if isinstance(m, Subsampling):  # a = w · (window sum of x) + b: one connection per output unit
        summed = F.avg_pool2d(x.float(), m.kernel_size) * m.window
        return (d2 * summed.square()).sum((0, 2, 3)), bias
    if isinstance(m, SparseConv2d):  # the dense kernel's sums, gathered back to the connected kernels
        k = m.kernel_size
        dense = torch.nn.grad.conv2d_weight(x2, (m.out_channels, m.in_channels, k, k), d2)
        return (m.placement.t() @ dense.reshape(-1, k * k)).reshape(m.weight.shape), bias
    weight = torch.nn.grad.conv2d_weight(
        x2, m.weight.shape, d2, m.stride, m.padding, m.dilation, m.groups
    )  # nn.Conv2d
    return weight, bias


def estimate_curvature(
    model: nn.Module,
    images: torch.Tensor,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    generator: torch.Generator | None = None,
    samples: int = PAPER_SAMPLES,
) -> dict[nn.Parameter, torch.Tensor]:
    """The curvature ``h`` of every trainable parameter, averaged over ``samples`` patterns drawn from
    ``images`` (uint8, prepared by ``prepare``) with ``generator``; see the module's docstring. No labels:
    the Gauss-Newton matrix depends on the model's outputs only."""
    params = [p for p in model.parameters() if p.requires_grad]
    h = {p: torch.zeros_like(p, dtype=torch.float32) for p in params}
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    picked = torch.randperm(len(images), generator=g)[:samples]
    rbf = _rbf_layer(model)
    connected = [m for m in model.modules() if isinstance(m, _CONNECTED) and m.weight.requires_grad]
    owned = {id(q) for m in connected for q in (m.weight, m.bias) if q is not None}
    others = [p for p in params if id(p) not in owned]  # e.g. BatchNorm: the squared per-pattern gradient
    seen: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [
        m.register_forward_hook(lambda m, args, out: seen.__setitem__(m, (args[0], out))) for m in connected
    ]
    features: list[torch.Tensor] = []
    if rbf is not None:
        hooks.append(rbf.register_forward_pre_hook(lambda _m, args: features.append(args[0])))
    was_training = model.training
    model.eval()
    try:
        for i in picked.tolist():
            x = prepare(images[i : i + 1])
            with torch.enable_grad(), torch.autocast(x.device.type, enabled=False):
                out = model(x).float()
                if rbf is not None:  # H = 2I in F6's output: v = √2 · Rademacher
                    f = features.pop()
                    v = (torch.randint(0, 2, f.shape, generator=g).float() * 2 - 1) * 2**0.5
                    probe = (f.float() * v.to(f.device)).sum()
                else:  # softmax cross-entropy: v = e_c - p with c ~ p (the Monte-Carlo Fisher)
                    p = F.softmax(out.detach().cpu(), dim=1)
                    c = torch.multinomial(p, 1, generator=g).view(1).to(out.device)
                    probe = F.cross_entropy(out, c)
                outputs = [seen[m][1] for m in connected]
                grads = torch.autograd.grad(probe, outputs + others, allow_unused=True)
            with torch.no_grad():
                for m, d in zip(connected, grads[: len(connected)], strict=True):
                    if d is not None:
                        hw, hb = _connection_sums(m, seen[m][0], d.float().square())
                        h[m.weight].add_(hw)
                        if m.bias is not None and m.bias.requires_grad:
                            h[m.bias].add_(hb)
                for q, d in zip(others, grads[len(connected) :], strict=True):
                    if d is not None:
                        h[q].add_(d.float().square())
            seen.clear()
            features.clear()
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    n = max(1, len(picked))
    return {p: acc / n for p, acc in h.items()}


def before_pass(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    images: torch.Tensor | None,
    prepare: Callable,
    seed: int,
    epoch: int,
) -> None:
    """What the trainer calls before every epoch: an SDLM optimizer re-estimates its curvature on 500 patterns
    drawn with ``(seed, epoch)`` (so ``--resume`` repeats it exactly); any other optimizer: nothing.
    ``images`` is None when the training set is streamed from disk: SDLM then refuses (it samples in memory)."""
    if isinstance(optimizer, SDLM):
        if images is None:
            raise CnnzooError("--optimizer sdlm needs the training set in memory; it cannot be streamed")
        optimizer.estimate(model, images, prepare, epoch_generator(seed, epoch, _CURVATURE_STREAM))
