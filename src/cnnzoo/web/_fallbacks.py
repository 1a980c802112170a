"""Stand-ins for contracts other parts of cnnzoo provide, used only while those modules are absent.

The web app imports ``cnnzoo.checkpoint.load_checkpoint/preprocess`` and ``cnnzoo.data.load_dataset``
first (docs/architecture.md); these follow the same contracts so the app works during development.
Delete this file once ``cnnzoo.checkpoint`` and ``cnnzoo.data`` exist everywhere.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import CheckpointError, DataError


def load_checkpoint(path) -> tuple[torch.nn.Module, dict]:
    """Run directory or ``model.safetensors`` -> (model in eval mode, metadata dict)."""
    from safetensors.torch import load_file

    from ..registry import create_model

    p = Path(path)
    run_dir = p if p.is_dir() else p.parent
    meta_path, weights = run_dir / "checkpoint.json", run_dir / "model.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise CheckpointError(f"{run_dir}: needs checkpoint.json and model.safetensors")
    try:
        meta = json.loads(meta_path.read_text())
        model = create_model(meta["model"], **meta.get("model_kwargs", {}))
        model.load_state_dict(load_file(str(weights)))
    except (KeyError, ValueError, RuntimeError, OSError) as e:
        raise CheckpointError(f"{run_dir}: cannot load checkpoint: {e}") from None
    return model.eval(), meta


def preprocess(images_uint8: torch.Tensor, meta: dict) -> torch.Tensor:
    """(N, C, h, w) uint8 -> (N, C, H, W) float: /255, padded (or resized) to input_size, normalised."""
    _, h_in, w_in = meta["input_size"]
    x = images_uint8.float() / 255.0
    h, w = x.shape[-2:]
    if h <= h_in and w <= w_in and (h_in - h) % 2 == 0 and (w_in - w) % 2 == 0:
        ph, pw = (h_in - h) // 2, (w_in - w) // 2
        x = F.pad(x, (pw, pw, ph, ph))  # 28 -> 32 as LeNet-5 did: the digit stays the size it was
    elif (h, w) != (h_in, w_in):
        x = F.interpolate(x, size=(h_in, w_in), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    return (x - mean) / std


FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


def load_test_images(name: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images N×1×28×28 uint8, labels, classes) of an IDX dataset in /usr/share/datasets/NAME."""
    root = Path("/usr/share/datasets") / name
    try:
        with gzip.open(root / "t10k-images-idx3-ubyte.gz") as f:
            images = torch.frombuffer(bytearray(f.read()[16:]), dtype=torch.uint8).view(-1, 1, 28, 28)
        with gzip.open(root / "t10k-labels-idx1-ubyte.gz") as f:
            labels = torch.frombuffer(bytearray(f.read()[8:]), dtype=torch.uint8).long()
    except (OSError, RuntimeError) as e:
        raise DataError(f"{root}: no test images ({e})") from None
    classes = FASHION_MNIST_CLASSES if name == "fashion-mnist" else [str(i) for i in range(10)]
    return images, labels, classes
