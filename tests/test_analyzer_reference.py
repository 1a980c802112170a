"""The fast analyzer (class swaps, shapes by rule, a light copy) against the plain hooks-based reference, on
every zoo model at its default input: the same leaf rows, shapes, parameters and costs."""

from __future__ import annotations

import pytest
import torch

import cnnzoo
from cnnzoo.analysis.reference import reference_rows


def _fast_rows(model, size, leaf_names: set[str]) -> list[tuple]:
    s = cnnzoo.summary(model, size)
    rows = [(r.name, r.type, r.output_shape, r.params, r.macs, r.flops, r.connections) for r in s.layers]
    return [r for r in rows if r[0].split("#")[0] in leaf_names]  # residual additions are not leaf calls


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_fast_analyzer_agrees_with_the_hooks_reference(name):
    with torch.device("meta"):
        model = cnnzoo.create_model(name)
    size = model.card.input_size
    leaves = {n for n, m in model.named_modules() if n and next(m.children(), None) is None}
    reference = reference_rows(model, size)
    assert reference, name
    assert _fast_rows(model, size, leaves) == reference
    assert _fast_rows(name, size, leaves) == reference  # a model the analyzer builds itself, in place


def test_reference_sees_torchvision_repeated_calls():
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        model = torchvision.models.resnet18()
    leaves = {n for n, m in model.named_modules() if n and next(m.children(), None) is None}
    reference = reference_rows(model, (3, 64, 64))
    assert "layer1.0.relu#2" in [r[0] for r in reference]
    assert _fast_rows(model, (3, 64, 64), leaves) == reference
