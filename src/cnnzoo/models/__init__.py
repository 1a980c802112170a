"""The model zoo: one module per family; importing this package registers every model in the table of
:mod:`cnnzoo.models.registry`, whose lookups it re-exports."""

from . import alexnet, bottleneck, lenet, resnet, vgg  # noqa: F401  (their decorators fill the table)
from .registry import ModelInfo, Published, create_model, get_model_info, list_models, register_model

__all__ = ["ModelInfo", "Published", "create_model", "get_model_info", "list_models", "register_model"]
