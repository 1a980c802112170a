"""Every private PyTorch internal cnnzoo relies on, in one place, each pinned by tests/test_torch_compat.py.

The analyzer (:mod:`cnnzoo.analysis.probe`, :mod:`cnnzoo.analysis.recorder`) works on ``nn.Module``'s own
storage because the public API costs more than the work: ResNet-152 is analysed in ~10 ms, and
``Module.__setattr__``/``__getattr__``, forward hooks and ``copy.deepcopy`` would each multiply that. The
fully convolutional conversion finds shapes with fake tensors. Should a torch release change any of this, the
pinning test fails by name, and this module is the one place to adapt.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules import module as _module
from torch.utils._python_dispatch import TorchDispatchMode  # sees every ATen op (analysis/dispatch.py)

__all__ = [
    "DisableTorchFunction",
    "DisableTorchDispatch",
    "PARAMETERS",
    "BUFFERS",
    "MODULES",
    "FORWARD_HOOK_DICTS",
    "has_hooks",
    "has_forward_hooks",
    "global_hooks",
    "set_class",
    "nn_constants",
    "fake_shapes",
    "TorchDispatchMode",
    "flop_formulas",
]

# A context manager that turns torch-function dispatch (TorchFunctionMode) off inside it.
DisableTorchFunction = torch._C.DisableTorchFunction
# One that turns Python dispatch (TorchDispatchMode) off: the analyzer's own bookkeeping tensors (outputs it
# knows by rule) bypass its dispatcher-level counter, which would cost ~100 µs each.
DisableTorchDispatch = torch._C._DisableTorchDispatch


def flop_formulas() -> dict:
    """PyTorch's FLOP formulas by ATen operation (``FlopCounterMode``'s registry: matrix products,
    convolutions of any dimension and their transposes, attention kernels); each is called as
    ``f(*args, **kwargs, out_val=out)``."""
    from torch.utils.flop_counter import flop_registry

    return flop_registry


# nn.Module keeps its parameters, buffers and children in these instance-dict entries (plain dicts).
PARAMETERS, BUFFERS, MODULES = "_parameters", "_buffers", "_modules"
# The forward-hook dicts a copied module must not share with its original once it has hooks (not every torch
# version has all five; the copy takes the ones present).
FORWARD_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
)


def has_hooks(d: dict) -> bool:
    """Whether a module (its ``__dict__``) has hooks that ``Module._call_impl`` would run: such a module must
    keep going through ``Module.__call__``."""
    return bool(
        d["_forward_hooks"] or d["_forward_pre_hooks"] or d["_backward_hooks"] or d["_backward_pre_hooks"]
    )


def has_forward_hooks(d: dict) -> bool:
    """Whether a module (its ``__dict__``) has forward or forward-pre hooks; the other forward-hook dicts
    are only filled along with these two."""
    return bool(d["_forward_hooks"] or d["_forward_pre_hooks"])


def global_hooks() -> bool:
    """Whether hooks for every module are registered (``register_module_forward_hook`` and the like)."""
    m = _module
    return bool(
        m._global_forward_hooks
        or m._global_forward_pre_hooks
        or m._global_backward_hooks
        or m._global_backward_pre_hooks
    )


def set_class(module: nn.Module, cls: type) -> None:
    """Swap ``module``'s class for a subclass (as ``torch.nn.utils.parametrize`` does). A subclass defining
    ``__call__`` is then called without ``Module._call_impl``, which is where hooks would run."""
    object.__setattr__(module, "__class__", cls)  # not Module.__setattr__: nothing to register


def nn_constants(cls: type) -> tuple[str, ...] | None:
    """The hyper-parameter names of a torch.nn class (its TorchScript ``__constants__``); None for others,
    whose hyper-parameters the analyzer cannot know."""
    return tuple(getattr(cls, "__constants__", ())) if cls.__module__.startswith("torch.nn.") else None


@contextmanager
def fake_shapes():
    """Fake tensors (shapes and dtypes, no data, no compute) for the duration; real tensors mixed in are
    allowed. A too-small input makes a meta kernel fail, which the caller reports; fake_tensor's own logging
    of the failure (a full traceback at ERROR level) is only noise then."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    log = logging.getLogger("torch._subclasses.fake_tensor")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            yield
    finally:
        log.setLevel(level)
