"""Test-time flips: a trained model's logits averaged over the image and its mirror image.

A net trained with random mirroring (``hflip``) has learnt both orientations of every class; asking it about
both at test time and averaging the logits (airbench's test-time flip, Jordan 2024) is a cheap ensemble: on
Fashion-MNIST it gave lenet5_modern +0.3 to +0.6 points (docs/training.md), for a second forward pass of the
same batch. A net trained without mirroring is hurt by it (-1.9 to -5.3 points there), so fit records it in
the model's card (``ModelCard.test_flip``) only where training mirrored.

Every prediction path wraps the model with :func:`for_prediction`: evaluation during and after training,
``cnnzoo eval``/``predict``/``serve`` (the Predictor), and the ONNX and TorchScript exports, whose graphs then
hold the flip too. So each gives the same answer. Feature maps, neurons and summaries see the plain model.
"""

from __future__ import annotations

import torch
from torch import nn

from .card import ModelCard, attach_card, card_of

__all__ = ["FlipAveraged", "for_prediction"]


class FlipAveraged(nn.Module):
    """``model`` asked about each image and its mirror image in one batch of twice the size; the output is
    the mean of the two logits, so a softmax of it is the prediction."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        logits = self.model(torch.cat([x, x.flip(-1)]))
        return (logits[:n] + logits[n:]) / 2


def for_prediction(model: nn.Module, card: ModelCard | None = None) -> nn.Module:
    """The module that predicts for ``model``: ``model`` itself, or wrapped in :class:`FlipAveraged` when its
    card (``card``, else the model's own) says it was trained for test-time flips. The wrapper carries the
    same card, so what reads a card (export's input size, the Predictor) reads the same one."""
    card = card if card is not None else card_of(model)
    if card is None or not card.test_flip or isinstance(model, FlipAveraged):
        return model
    return attach_card(FlipAveraged(model), card)
