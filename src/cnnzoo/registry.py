"""Deprecated: the registry is :mod:`cnnzoo.models` (the table itself: :mod:`cnnzoo.models.registry`)."""

from .models import ModelInfo, Published, create_model, get_model_info, list_models, register_model

__all__ = ["ModelInfo", "Published", "create_model", "get_model_info", "list_models", "register_model"]
