"""Receptive fields of random networks with branches against the input gradient: with all-positive weights
and inputs and average pooling, the gradient of one output unit reaches exactly its field (for fields inside
the image). Stacks of convolutions (kernel, stride, dilation), average pools (as modules and as functions),
residual additions and concatenations. Upsampling is left out: there the field is approximate (within one
jump of the map before it; docs/analyzer.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnzoo.analysis.summary import summary

C = 2
STEPS = st.one_of(
    st.tuples(st.just("conv"), st.sampled_from([1, 3, 5]), st.sampled_from([1, 2]), st.sampled_from([1, 2])),
    st.tuples(st.just("pool"), st.sampled_from([2, 3]), st.just(0), st.just(0)),
    st.tuples(st.just("fpool"), st.just(2), st.just(0), st.just(0)),
    st.tuples(st.just("residual"), st.sampled_from([3, 5]), st.just(0), st.just(0)),
    st.tuples(st.just("cat"), st.sampled_from([1, 3]), st.sampled_from([3, 5]), st.just(0)),
)


class Net(nn.Module):
    def __init__(self, steps):
        super().__init__()
        self.steps = steps
        self.layers = nn.ModuleList()
        for kind, a, b, d in steps:
            if kind == "conv":
                self.layers.append(nn.Conv2d(C, C, a, stride=b, dilation=d, padding=d * (a // 2)))
            elif kind == "pool":
                self.layers.append(nn.AvgPool2d(a, stride=a))
            elif kind == "residual":
                self.layers.append(nn.Conv2d(C, C, a, padding=a // 2))
            elif kind == "cat":
                self.layers.append(
                    nn.ModuleList(
                        [nn.Conv2d(C, C // 2, a, padding=a // 2), nn.Conv2d(C, C - C // 2, b, padding=b // 2)]
                    )
                )
            else:
                self.layers.append(nn.Identity())

    def forward(self, x):
        for (kind, *_), layer in zip(self.steps, self.layers, strict=True):
            if kind == "fpool":
                x = F.avg_pool2d(x, 2)
            elif kind == "up":
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            elif kind == "residual":
                x = x + layer(x)
            elif kind == "cat":
                x = torch.cat([layer[0](x), layer[1](x)], dim=1)
            else:
                x = layer(x)
        return x


@settings(max_examples=25, deadline=None)
@given(st.lists(STEPS, min_size=1, max_size=5))
def test_random_stacks_match_the_gradient(steps):
    side = 96
    net = Net(steps)
    x = torch.rand(1, C, side, side) + 0.1
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.abs() + 0.1)
        try:
            out_shape = net(x).shape
        except RuntimeError:  # torch's "output size is too small": a stack the input cannot go through
            assume(False)
    assume(min(out_shape[2:]) >= 1)
    s = summary(net, (C, side, side))
    rf = s.layers[-1].receptive_field.to_dict()
    i = out_shape[2] // 2
    x.requires_grad_(True)
    net(x)[0, :, i, i].sum().backward()
    rows = x.grad[0].sum(0).sum(1).nonzero()
    extent = int(rows.max() - rows.min() + 1)
    centre = rf["start"] + i * rf["jump"]
    # a field inside the image (at its border a dilated kernel's outer taps may fall in the padding)
    assume(rf["size"] / 2 <= centre <= side - rf["size"] / 2)
    predicted = rf["size"]
    assert extent == predicted, (steps, rf, extent)
