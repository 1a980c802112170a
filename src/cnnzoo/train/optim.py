"""Optimizers and learning-rate schedules, stepped once per batch.

``make_optimizer`` builds SGD (momentum, Nesterov), Adam, AdamW, Muon with SGD (:mod:`cnnzoo.train.muon`)
or the 1998 paper's SDLM (:mod:`cnnzoo.train.sdlm`) with weight decay kept off biases and normalisation
parameters (decaying a BatchNorm scale toward 0 only hurts). ``make_scheduler`` returns a ``LambdaLR`` whose
factor is :func:`lr_factor`: a linear warmup, then constant, step, He et al.'s milestones, cosine, one-cycle,
a straight line to zero or the 1998 paper's η per pass.
A plain function of the step makes the schedule easy to plot, test and resume (the scheduler's state is
just its step count).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..config import OPTIMIZERS, SCHEDULES, TrainConfig
from ..errors import CnnzooError
from .finetune import head_name
from .muon import MuonSGD, muon_groups
from .sdlm import SDLM

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "LENET1998_ETA",
    "make_optimizer",
    "make_scheduler",
    "lr_factor",
    "lenet1998_eta",
    "param_groups",
]

# the warmup of a schedule when none is given, as a share of the run
DEFAULT_WARMUP = {"onecycle": 0.25, "linear": 0.1}

# LeCun et al. 1998, §III.C: "0.0005 for the first two passes, 0.0002 for the next three, 0.0001 for the next
# three, 0.00005 for the next 4, and 0.00001 thereafter" (batch 1). Index: the pass (epoch), 0-based.
LENET1998_ETA = (5e-4,) * 2 + (2e-4,) * 3 + (1e-4,) * 3 + (5e-5,) * 4 + (1e-5,)


def lenet1998_eta(epoch: int) -> float:
    """The paper's global η in pass ``epoch`` (0-based); 0.00001 from the 13th pass on."""
    return LENET1998_ETA[min(epoch, len(LENET1998_ETA) - 1)]


def param_groups(
    model: nn.Module, weight_decay: float, lr_backbone: float | None = None, decay_all: bool = False
) -> list[dict]:
    """Two groups: weights of convs/linears (decayed) and 1-D parameters: biases, norm scales (decayed only
    with ``decay_all``). Frozen
    parameters (``requires_grad=False``) are left out. With ``lr_backbone``, the parameters before the
    classifier (:func:`~cnnzoo.train.finetune.head_name`) form two more groups with that learning rate
    (after the classifier's: group 0's lr is the one the metrics report)."""
    head = head_name(model) + "." if lr_backbone is not None else ""
    decay, no_decay, body_decay, body_no_decay = [], [], [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            body = bool(head) and not name.startswith(head)
            if p.ndim > 1:
                (body_decay if body else decay).append(p)
            else:
                (body_no_decay if body else no_decay).append(p)
    other = weight_decay if decay_all else 0.0
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": other}]
    if head:
        groups += [
            {"params": body_decay, "weight_decay": weight_decay, "lr": lr_backbone},
            {"params": body_no_decay, "weight_decay": other, "lr": lr_backbone},
        ]
    return groups


def make_optimizer(model: nn.Module, cfg: TrainConfig, bf16: bool | None = None) -> torch.optim.Optimizer:
    """The optimizer ``cfg`` names, with every optimizer option of ``cfg``: fit and a hand-written loop (the
    speedrun's tutorial loop) build the same optimizer from a recipe.

    ``cfg.betas``: Adam/AdamW's (beta1, beta2), None for torch's (0.9, 0.999); SGD and SDLM have none.
    ``muon``: Muon at ``cfg.muon_lr`` for the hidden layers' weights (``muon_layers="conv"``: the
    convolutions' only), SGD at ``cfg.lr`` for the rest (:mod:`cnnzoo.train.muon`); ``momentum`` and
    ``nesterov`` are both's. ``bf16``: the run's resolved choice for Muon's matrix products (bf16 as
    torch.optim.Muon has them or, on hardware without bf16 units, fp32); None: ``cfg.bf16``, and bf16 when
    that is None too."""
    bf16 = bf16 if bf16 is not None else cfg.bf16 is not False
    groups = param_groups(model, cfg.weight_decay, cfg.lr_backbone, cfg.decay_all)
    adam = {"betas": tuple(cfg.betas)} if cfg.betas is not None else {}
    lr, momentum, nesterov = cfg.lr, cfg.momentum, cfg.nesterov
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if cfg.optimizer == "muon":
        groups = muon_groups(model, groups, cfg.muon_lr, lr, cfg.muon_layers)
        return MuonSGD(groups, lr, momentum, nesterov, bf16)
    if cfg.optimizer == "adam":  # Adam's weight decay is an L2 term in the gradient
        return torch.optim.Adam(groups, lr=lr, **adam)
    if cfg.optimizer == "adamw":  # decoupled weight decay (Loshchilov & Hutter)
        return torch.optim.AdamW(groups, lr=lr, **adam)
    if (
        cfg.optimizer == "sdlm"
    ):  # per-parameter steps lr/(0.02 + h); h is re-estimated before every epoch by fit
        return SDLM(groups, lr=lr)
    raise CnnzooError(f"unknown optimizer {cfg.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


def lr_factor(
    step: int,
    total_steps: int,
    schedule: str = "onecycle",
    warmup_steps: int = 0,
    step_every: int = 0,
    gamma: float = 0.1,
    final_factor: float = 0.0,
    milestones: Sequence[float] = (0.5, 0.75),
    steps_per_epoch: int = 0,
) -> float:
    """The multiplier of the base LR at optimizer step ``step`` (0-based) of ``total_steps``.

    - warmup: linear from 1/(warmup_steps+1) up to 1 over ``warmup_steps`` (all schedules).
    - ``constant``: 1.
    - ``step``: × ``gamma`` every ``step_every`` steps (default: a third of the run).
    - ``milestones``: × ``gamma`` at each of the fractions ``milestones`` of the run; He et al. 2015 divide
      by 10 at 50% and 75% (32k and 48k of 64k iterations on CIFAR-10).
    - ``cosine``: half a cosine from 1 down to ``final_factor`` after the warmup.
    - ``onecycle``: Smith's one cycle: linear warmup over 25% of the run when no warmup is given, then
      cosine annealing to ``final_factor``.
    - ``linear``: a 10% warmup when none is given, then a straight line down to ``final_factor``. Decaying
      linearly to zero matched or beat cosine across many tasks in Defazio et al. 2023 ("When, why and how
      much?") and in LLM training in Bergsma et al. 2025 ("Straight to zero"); here it did for 6 epochs of
      LeNet-5 on Fashion-MNIST (docs/training.md).
    - ``lenet1998``: the paper's η of the current epoch (``step // steps_per_epoch``) over its first pass's
      0.0005: 1, 1, 0.4 ×3, 0.2 ×3, 0.1 ×4, then 0.02. The base LR is then the first pass's η.
    """
    if schedule not in SCHEDULES:
        raise CnnzooError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if schedule in DEFAULT_WARMUP and warmup_steps == 0:
        warmup_steps = max(1, round(DEFAULT_WARMUP[schedule] * total_steps))
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "lenet1998":
        if steps_per_epoch < 1:
            raise CnnzooError("the lenet1998 schedule is per epoch: it needs steps_per_epoch")
        return lenet1998_eta(step // steps_per_epoch) / LENET1998_ETA[0]
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        every = step_every or max(1, total_steps // 3)
        return gamma ** ((step - warmup_steps) // every)
    if schedule == "milestones":
        return gamma ** sum(step >= int(f * total_steps) for f in milestones)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return final_factor + (1.0 - final_factor) * (1.0 - progress)
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """``cfg``'s schedule over ``cfg.epochs`` epochs of ``steps_per_epoch`` optimizer steps, stepped once per
    batch; the epoch-valued options (``warmup_epochs``, ``step_every_epochs``) become step counts here."""
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    step_every = cfg.step_every_epochs * steps_per_epoch
    schedule, gamma, milestones = cfg.schedule, cfg.gamma, tuple(cfg.milestones)
    # validates the name (and lenet1998's epoch length) before any training starts
    lr_factor(warmup_steps, total_steps, schedule, warmup_steps, steps_per_epoch=steps_per_epoch)

    def factor(step: int) -> float:
        return lr_factor(
            step,
            total_steps,
            schedule,
            warmup_steps,
            step_every,
            gamma,
            milestones=milestones,
            steps_per_epoch=steps_per_epoch,
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
