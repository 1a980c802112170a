"""cnnzoo: the classic convolutional networks, faithful to the papers.

The public API is imported lazily, so ``import cnnzoo`` is fast and each part loads only when used::

    import cnnzoo
    model = cnnzoo.create_model("lenet5")
    print(cnnzoo.summary("vgg16", input_size=(3, 224, 224)))
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "create_model": "zoo",  # the registry's, plus weights="imagenet" | "imagenet:v2" | a file
    "list_models": "models",
    "register_model": "models",
    "get_model_info": "models",
    "summary": "analysis.summary",
    "compare": "comparison",
    "CnnzooError": "errors",
    "fit": "train",
    "evaluate": "train",
    "predict": "inference",
    "History": "train",
    "load_dataset": "data",
    "dense_predict": "dense",
    "to_fully_convolutional": "convert",
    "score_map_size": "convert",
    "save_heatmap": "plots",
    "load_checkpoint": "checkpoint",
    "Predictor": "inference",
    "export_onnx": "export",
    "export_safetensors": "export",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
