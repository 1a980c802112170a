"""Fine-tuning: which parameters train, and with which learning rate.

``freeze="features"`` trains only the classifier (the layer ``reset_classifier`` replaces: the last module
with parameters of its own); ``freeze_until="layer3"`` freezes every parameter up to and including that
module, in the model's order, so the later layers and the classifier train. A frozen parameter gets
``requires_grad=False`` and is left out of the optimizer; a batch norm whose parameters are all frozen stays
in eval mode during training, so its (pretrained) running statistics are used and never updated: a frozen
part then computes exactly what it computed before, and its tensors come out of training bit-identical.
"""

from __future__ import annotations

from torch import nn

from ..card import ModelCard
from ..errors import CnnzooError

__all__ = ["head_name", "freeze", "pretrained_stats"]


def head_name(model: nn.Module) -> str:
    """The classifier's module name: the last module with parameters of its own (``fc``, ``classifier.6``:
    the one every zoo model's ``reset_classifier`` replaces)."""
    owners = [name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    if not owners:
        raise CnnzooError(f"{type(model).__name__} has no parameters to train")
    return owners[-1]


def _frozen_names(model: nn.Module, freeze: str | None, freeze_until: str | None) -> list[str]:
    names = [name for name, _ in model.named_parameters()]
    if freeze == "features":
        head = head_name(model) + "."
        return [n for n in names if not n.startswith(head)]
    if freeze_until is not None:
        modules = dict(model.named_modules())
        if freeze_until not in modules or not freeze_until:
            tops = ", ".join(name for name, _ in model.named_children())
            raise CnnzooError(
                f"--freeze-until {freeze_until!r}: {type(model).__name__} has no such module ({tops})"
            )
        inside = [i for i, n in enumerate(names) if n.startswith(freeze_until + ".")]
        if not inside:
            raise CnnzooError(f"--freeze-until {freeze_until!r}: that module has no parameters")
        return names[: inside[-1] + 1]
    return []


def _keep_eval(module: nn.Module, _inputs) -> None:
    module.training = False  # a frozen batch norm normalises with its running statistics and keeps them


def freeze(model: nn.Module, freeze: str | None = None, freeze_until: str | None = None) -> list[str]:
    """Freeze the parameters ``freeze``/``freeze_until`` name (see the module's text); return their names.
    Nothing left to train is an error."""
    frozen = set(_frozen_names(model, freeze, freeze_until))
    if not frozen:
        return []
    params = dict(model.named_parameters())
    if frozen == set(params):
        raise CnnzooError(f"--freeze-until {freeze_until!r} freezes every parameter: nothing would train")
    for name in frozen:
        params[name].requires_grad_(False)
    for prefix, m in model.named_modules():
        own = [f"{prefix}.{n}" if prefix else n for n, _ in m.named_parameters(recurse=False)]
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and own and frozen.issuperset(own):
            m.register_forward_pre_hook(_keep_eval)
    return sorted(frozen, key=list(params).index)


def pretrained_stats(card: ModelCard) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean/std of the pretrained weights the model of ``card`` was built with (normalization
    ``pretrained``): the features were learnt on inputs normalised so."""
    if not card.pretrained:
        raise CnnzooError(
            f"normalization 'pretrained' needs a model built with pretrained weights; {card.model} has random ones"
        )
    return tuple(card.mean), tuple(card.std)
