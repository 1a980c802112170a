"""Pretrained weights: torchvision's catalogue and an offline-first local store.

``catalogue`` lists what the publisher has (read from torchvision's enums); ``store`` fetches, imports,
checks and keeps it as safetensors + a JSON card; ``files`` holds the safe readers they share.
``resolve(model, spec)`` is what ``create_model(model, weights=spec)`` calls.
"""

from .catalogue import (
    PUBLISHER,
    USER,
    Preprocessing,
    WeightsEntry,
    catalogue,
    entries,
    lookup,
    override,
    split_spec,
)
from .store import (
    WeightsCard,
    fetch,
    import_file,
    is_offline,
    list_stored,
    load_card,
    path,
    remove,
    resolve,
    store_root,
)

__all__ = [
    "PUBLISHER",
    "USER",
    "Preprocessing",
    "WeightsEntry",
    "WeightsCard",
    "catalogue",
    "entries",
    "lookup",
    "override",
    "split_spec",
    "fetch",
    "import_file",
    "is_offline",
    "list_stored",
    "load_card",
    "path",
    "remove",
    "resolve",
    "store_root",
]
