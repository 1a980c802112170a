"""Pins every PyTorch internal that cnnzoo._torch_compat relies on. Should a torch release change one, the
test naming it fails here, before the analyzer or the conversion gives a wrong answer elsewhere."""

from __future__ import annotations

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnzoo import _torch_compat as compat


def test_module_storage_is_in_these_instance_dict_entries():
    conv = nn.Sequential(nn.Conv2d(1, 2, 3))
    d, leaf = conv.__dict__, conv[0].__dict__
    assert leaf[compat.PARAMETERS] == {"weight": conv[0].weight, "bias": conv[0].bias}
    assert isinstance(leaf[compat.BUFFERS], dict) and d[compat.MODULES] == {"0": conv[0]}
    bn = nn.BatchNorm2d(2).__dict__
    assert set(bn[compat.BUFFERS]) == {"running_mean", "running_var", "num_batches_tracked"}


def test_every_hook_dict_of_a_module_is_known():
    """A hook dict torch adds in a new release must be added here (and to has_hooks or FORWARD_HOOK_DICTS)."""
    known = set(compat.FORWARD_HOOK_DICTS) | {
        "_backward_hooks",
        "_backward_pre_hooks",
        "_state_dict_hooks",
        "_state_dict_pre_hooks",
        "_load_state_dict_pre_hooks",
        "_load_state_dict_post_hooks",
        "_is_full_backward_hook",
    }
    hook_dicts = {k for k in nn.Linear(1, 1).__dict__ if "hook" in k}
    assert hook_dicts <= known, hook_dicts - known
    assert {"_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"} <= hook_dicts


def test_hooks_are_seen():
    m = nn.ReLU()
    assert not compat.has_hooks(m.__dict__) and not compat.has_forward_hooks(m.__dict__)
    h = m.register_forward_hook(lambda *a: None)
    assert compat.has_hooks(m.__dict__) and compat.has_forward_hooks(m.__dict__)
    h.remove()
    h = m.register_full_backward_hook(lambda *a: None)
    assert compat.has_hooks(m.__dict__) and not compat.has_forward_hooks(m.__dict__)
    h.remove()
    assert not compat.global_hooks()
    h = nn.modules.module.register_module_forward_hook(lambda *a: None)
    try:
        assert compat.global_hooks()
    finally:
        h.remove()
    assert not compat.global_hooks()


def test_a_subclass_call_skips_call_impl_and_its_hooks():
    """The analyzer's swapped classes define __call__: Module._call_impl (and so every hook) is skipped."""
    seen = []

    class Traced(nn.ReLU):
        def __call__(self, x):
            return x + 1

    m = nn.ReLU()
    m.register_forward_hook(lambda *a: seen.append("hook"))
    m(torch.zeros(1))
    assert seen == ["hook"]  # the plain class runs its hooks...
    compat.set_class(m, Traced)
    assert type(m) is Traced and isinstance(m, nn.ReLU)
    assert float(m(torch.zeros(1))) == 1.0 and seen == ["hook"]  # ...the swapped one does not


def test_torch_function_dispatch_can_be_switched_off():
    seen = []

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    x = torch.ones(2)
    with Mode():
        x + x
        with compat.DisableTorchFunction():
            x * x
    assert len(seen) == 1


def test_nn_constants_are_the_hyper_parameters():
    assert {"stride", "padding", "kernel_size", "in_channels", "out_channels"} <= set(
        compat.nn_constants(nn.Conv2d)
    )
    assert compat.nn_constants(type("Mine", (nn.Module,), {})) is None


def test_fake_shapes_compute_shapes_without_data():
    conv = nn.Conv2d(3, 8, 3)
    with compat.fake_shapes():
        out = conv(torch.empty(1, 3, 10, 10))
    assert tuple(out.shape) == (1, 8, 8, 8)
    assert type(out).__name__ == "FakeTensor"
