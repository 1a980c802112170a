"""``GET /api/explain/{model}?input=CxHxW&layer=NAME&field=F&lang=en|zh``: the analyzer's figures explained
(formula, the values filled in, the value, the source), as :meth:`cnnzoo.analysis.schema.Summary.explain`
gives them; ``model`` is a registered name or a layer string. ``GET /api/figures``: the table of figures
(:data:`cnnzoo.figures.FIGURES`) the pages draw their columns and totals from. Errors are
:mod:`cnnzoo.errors` ones: the app answers them on one line (4xx)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from fastapi import APIRouter, Query

from ..errors import ShapeError
from ..figures import figures_json
from ..shapes import parse_input_size

__all__ = ["router"]

MAX_NAME = 4000  # a model name or a layer string (layershapes.MAX_STRING_LENGTH is 2,000)
MAX_SIDE, MAX_CHANNELS = 4096, 64  # the analysis runs on the meta device: its cost does not grow with these

router = APIRouter()


@lru_cache(maxsize=16)
def _summary(name: str, size: tuple[int, int, int] | None):
    """A summary kept with its explanation walk (the explorer asks about one model many times)."""
    from ..analysis.summary import summary
    from ..models.source import check_model_arg

    check_model_arg(name, allow_code=False)  # a zoo name or a layer string; never code over the web
    return summary(name, size)


@router.get("/api/explain/{model}", summary="How each figure of the layer table is computed")
def explain(
    model: str,
    input: str | None = Query(None, description="CxHxW, e.g. 1x32x32 (default: the model's)"),
    layer: str | None = Query(None, description="a layer or block name (default: every layer)"),
    field: str | None = Query(None, description="a key of GET /api/figures: output_shape, params, macs, …"),
    lang: Literal["en", "zh"] = "en",
) -> dict:
    size = parse_input_size(input) if input else None
    if size is not None and (size[0] > MAX_CHANNELS or max(size[1:]) > MAX_SIDE):
        raise ShapeError(f"input {input} is too large: at most {MAX_CHANNELS} channels and {MAX_SIDE} pixels")
    s = _summary(model[:MAX_NAME], size)
    found = s.explain(layer, field, lang=lang)
    found = found if isinstance(found, list) else [found]
    return {
        "model": s.model,
        "input": list(s.input),
        "lang": lang,
        "explanations": [e.to_dict() for e in found],
    }


@router.get("/api/figures", summary="The figures of the layer table: key, kind and names in both languages")
def figure_table() -> list[dict]:
    return figures_json()
