"""The model zoo: one module per family; importing this package imports every module in it (as ``cnnzoo``'s
CLI finds its commands), whose ``@register_model`` decorators fill the table of :mod:`cnnzoo.models.registry`.
A new family is one module here; this package re-exports the table's lookups."""

import importlib
import pkgutil

from .registry import ModelInfo, Published, create_model, get_model_info, list_models, register_model

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "registry" and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = ["ModelInfo", "Published", "create_model", "get_model_info", "list_models", "register_model"]
