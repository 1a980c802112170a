"""The one model argument of the commands: a zoo name, a layer string, FILE.py:NAME, torchvision:NAME or
timm:NAME (:mod:`cnnzoo.models.source`), and ``--model-args`` for the last three."""

from __future__ import annotations

import json

from ..errors import CnnzooError

MODEL_HELP = (
    "a zoo name (see `cnnzoo models`), a layer string such as 1x28x28-32C3-MP2-64N-10N "
    "(docs/layer-strings.md), path/to/file.py:Name, torchvision:NAME or timm:NAME"
)


def add_model_args(p) -> None:
    p.add_argument(
        "--model-args",
        metavar="JSON",
        default=None,
        help="keyword arguments for FILE.py:NAME, torchvision:NAME or timm:NAME, e.g. '{\"width\": 32}'",
    )


def model_args(args) -> dict:
    """``--model-args`` as a dict; bad JSON is a one-line error."""
    text = getattr(args, "model_args", None)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise CnnzooError(f"--model-args: not JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(value, dict):
        raise CnnzooError(f'--model-args: expected a JSON object such as {{"width": 32}}, got {text!r}')
    return value
