"""The output-size arithmetic against PyTorch's real layers (hypothesis), and the seeds' worked examples."""

import doctest

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnzoo import shapes
from cnnzoo.shapes import (
    conv_output_size,
    min_input_for_chain,
    min_input_size,
    output_shape_2d,
    pool_output_size,
    same_padding,
)


def test_docstring_examples_hold():
    # The module's docstrings work the seeds' examples (AlexNet 227→55→27→13→6, VGG, LeNet).
    result = doctest.testmod(shapes)
    assert result.attempted >= 15 and result.failed == 0


def _torch_len(layer: nn.Module, n: int) -> int:
    with torch.device("meta"):
        return layer(torch.empty(1, 1, n, n)).shape[-1]


geometry = dict(
    n=st.integers(1, 80), k=st.integers(1, 9), s=st.integers(1, 5), d=st.integers(1, 3), p=st.integers(0, 4)
)


@settings(max_examples=300, deadline=None)
@given(**geometry)
def test_conv_matches_torch(n, k, s, d, p):
    ours = conv_output_size(n, k, stride=s, padding=p, dilation=d)
    try:
        theirs = _torch_len(nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d), n)
    except RuntimeError:  # torch refuses when the map collapses
        assert ours < 1
    else:
        assert ours == theirs


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 80), k=st.integers(1, 7), s=st.integers(1, 5), p=st.integers(0, 3), ceil=st.booleans()
)
def test_maxpool_matches_torch_including_ceil_mode(n, k, s, p, ceil):
    if p > k // 2:  # torch's own constraint on pooling padding
        return
    ours = pool_output_size(n, k, stride=s, padding=p, ceil_mode=ceil)
    try:
        theirs = _torch_len(nn.MaxPool2d(k, stride=s, padding=p, ceil_mode=ceil), n)
    except RuntimeError:
        assert ours < 1
    else:
        assert ours == theirs


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 64), k=st.integers(1, 7), d=st.integers(1, 3))
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_same_padding_keeps_size_like_torch(n, k, d):
    # PyTorch's padding="same" (stride 1) keeps the size; ours agrees, and so does TF's rule.
    assert conv_output_size(n, k, padding="same", dilation=d) == n
    assert _torch_len(nn.Conv2d(1, 1, k, padding="same", dilation=d), n) == n


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 64), k=st.integers(1, 7), s=st.integers(1, 4))
def test_tf_same_padding_with_stride(n, k, s):
    # 'same' with stride s gives ceil(n / s) outputs; the explicit padding reproduces it in torch.
    before, after = same_padding(n, k, s)
    conv = nn.Sequential(nn.ZeroPad2d((before, after, before, after)), nn.Conv2d(1, 1, k, stride=s))
    assert conv_output_size(n, k, stride=s, padding="same") == _torch_len(conv, n) == -(-n // s)


@settings(max_examples=300, deadline=None)
@given(**geometry, out=st.integers(1, 10))
def test_min_input_size_is_the_smallest(n, k, s, d, p, out):
    m = min_input_size(k, stride=s, padding=p, dilation=d, out=out)
    assert conv_output_size(m, k, s, p, d) >= out
    if m > 1:
        assert conv_output_size(m - 1, k, s, p, d) < out


def test_valid_and_pairs():
    assert conv_output_size(28, 5, padding="valid") == 24
    assert output_shape_2d((227, 227), 11, 4) == (55, 55)
    with pytest.raises(ValueError):
        conv_output_size(28, 5, padding="half")


def test_alexnet_chain_needs_227_for_6x6():
    # seed 000's AlexNet: conv11/4, pool3/2, conv5 same, pool3/2, 3× conv3 same, pool3/2 -> 6×6.
    # 227 is exactly the smallest input giving 6×6 (the paper's "224" cannot: it gives 5×5).
    chain = [
        dict(kernel=11, stride=4),
        dict(kernel=3, stride=2),
        dict(kernel=5, padding=2),
        dict(kernel=3, stride=2),
        dict(kernel=3, padding=1),
        dict(kernel=3, padding=1),
        dict(kernel=3, padding=1),
        dict(kernel=3, stride=2),
    ]
    assert min_input_for_chain(chain, out=6) == 227
    for size, expected in ((227, 6), (226, 5), (224, 5)):
        n = size
        for layer in chain:
            n = conv_output_size(n, layer["kernel"], layer.get("stride", 1), layer.get("padding", 0))
        assert n == expected


def test_models_do_not_import_the_analyzer():
    """shapes.py sits below the models: building a model must not pull in cnnzoo.analysis."""
    import subprocess
    import sys

    code = "import sys, cnnzoo; cnnzoo.create_model('alexnet'); print(any(m.startswith('cnnzoo.analysis') for m in sys.modules))"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )
