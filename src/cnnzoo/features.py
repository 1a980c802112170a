"""Intermediate feature maps by layer name, for teaching ("what does C1 see?") and the web app.

Built on torchvision's FX feature extraction (``create_feature_extractor``): the model is traced once,
and the requested nodes' outputs come back in a dict. Node names are module paths (``c1``, ``features.0``,
``layer1.0.conv2``); a module called twice gets ``_1`` on its second call (``layer1.0.relu_1`` is a ResNet
block's output, after the addition).

    >>> import torch, cnnzoo
    >>> from cnnzoo.features import feature_maps, feature_layer_names
    >>> model = cnnzoo.create_model("lenet5").eval()
    >>> feature_layer_names(model)[:4]
    ['c1', 'act1', 's2', 'act2']
    >>> {k: tuple(v.shape) for k, v in feature_maps(model, torch.zeros(1, 1, 32, 32), ["c1", "s2"]).items()}
    {'c1': (1, 6, 28, 28), 's2': (1, 6, 14, 14)}
"""

from __future__ import annotations

import difflib
from contextlib import contextmanager

import torch
from torch import nn
from torchvision.models.feature_extraction import (
    NodePathTracer,
    create_feature_extractor,
    get_graph_node_names,
)

from .errors import CnnzooError
from .layers import RBFOutput, ScaledTanh, SparseConv2d, Subsampling

__all__ = ["FeatureExtractor", "feature_maps", "feature_layer_names"]

# cnnzoo's own layers are traced as single nodes (one map each), not as the ops inside them.
_LEAF_MODULES = [ScaledTanh, Subsampling, SparseConv2d, RBFOutput]
_TRACER_KWARGS = {"leaf_modules": _LEAF_MODULES}

# Outputs worth showing as images: convolutions, pooling/subsampling, activations. Not batch norm (it looks
# like its conv), not adaptive pools (1×1 in ResNet, a no-op in VGG/AlexNet), not Linear (no map).
_SHOWN = (
    nn.Conv2d,
    SparseConv2d,
    nn.MaxPool2d,
    nn.AvgPool2d,
    Subsampling,
    nn.ReLU,
    nn.Tanh,
    nn.Sigmoid,
    ScaledTanh,
    nn.LocalResponseNorm,
)


def feature_layer_names(model: nn.Module, all_nodes: bool = False) -> list[str]:
    """Names ``feature_maps`` accepts, in forward order: by default every conv/pool/activation output;
    ``all_nodes=True`` lists every node torchvision can return (including functional ops and ``x``)."""
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=_TRACER_KWARGS)
    available = eval_nodes if not model.training else train_nodes
    if all_nodes:
        return available
    tracer = NodePathTracer(**_TRACER_KWARGS)
    graph = tracer.trace(model)
    shown = []
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(model.get_submodule(node.target), _SHOWN):
            shown.append(tracer.node_to_qualname[node])
    return [n for n in shown if n in available]


@contextmanager
def _not_inplace(model: nn.Module):
    """``ReLU(inplace=True)`` would overwrite the conv output we return; switch it off for the call."""
    switched = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for m in switched:
        m.inplace = False
    try:
        yield
    finally:
        for m in switched:
            m.inplace = True


class FeatureExtractor:
    """``model`` traced once for ``layers`` (default: :func:`feature_layer_names`); each call runs it and
    returns ``{layer name: output}`` in forward order. Tracing costs far more than a LeNet forward pass, so
    a caller that asks again and again (the web app) keeps one of these. Unknown names raise
    ``CnnzooError`` with the closest ones."""

    def __init__(self, model: nn.Module, layers: list[str] | None = None) -> None:
        if layers is None:
            layers = feature_layer_names(model)
        else:
            available = feature_layer_names(model, all_nodes=True)
            for name in layers:  # a node, or a module whose ops were traced (its last node is returned)
                if name not in available and not any(n.startswith(name + ".") for n in available):
                    close = difflib.get_close_matches(name, available, n=3)
                    hint = f" — did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                    raise CnnzooError(f"{type(model).__name__} has no layer {name!r}{hint}")
        self.model, self.layers = model, list(layers)
        self._graph = create_feature_extractor(model, return_nodes=self.layers, tracer_kwargs=_TRACER_KWARGS)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run on ``x`` (N, C, H, W) without gradients, in the model's current mode."""
        self._graph.train(self.model.training)
        with torch.no_grad(), _not_inplace(self.model):
            return dict(self._graph(x))


def feature_maps(
    model: nn.Module, x: torch.Tensor, layers: list[str] | None = None
) -> dict[str, torch.Tensor]:
    """Run ``model`` on ``x`` (N, C, H, W) and return ``{layer name: output}`` for ``layers`` (default:
    :func:`feature_layer_names`), in forward order. Runs without gradients, in the model's current mode
    (call ``model.eval()`` first for inference behaviour). Unknown names raise ``CnnzooError``."""
    return FeatureExtractor(model, layers)(x)
