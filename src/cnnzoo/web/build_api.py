"""The Build page's API: a layer string checked as it is typed.

    GET /api/build/check?net=STRING&input=CxHxW  the analyzer's table for the net, its tokens (one per token
                                                 of the text, with its fields and the rows it makes), or why
                                                 it does not work: its code and values, the message in
                                                 English and Chinese (``reasons``), the offending token, and
                                                 for a map that collapses the output-size formula with its
                                                 numbers and the smallest input that works
    GET /api/build/starts                        the nets a learner can start from: the zoo's (those a layer
                                                 string can write), the seeds' and an empty input

A layer string is data: :func:`cnnzoo.models.layerstring.parse_layer_string` matches it against token
patterns and :func:`~cnnzoo.models.layerstring.build_from_spec` builds it on the meta device (no weights, a
few ms even for VGG-16), so an edit is answered well inside the page's 100 ms.
"""

from __future__ import annotations

import re
import time
from functools import lru_cache

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ..errors import CnnzooError, LayerStringError
from ..models.layererrors import layer_error, reasons
from ..shapes import conv_output_size

__all__ = ["router", "analyze_layer_string", "SEED_NETS"]

_INPUT = re.compile(r"^\s*\d{1,6}\s*x\s*\d{1,6}\s*x\s*\d{1,6}\s*(?=-|$)", re.I)
_SIZE = re.compile(r"^\s*(\d{1,6})\s*[x×]\s*(\d{1,6})\s*[x×]\s*(\d{1,6})\s*$", re.I)

# The nets of the course notes this project teaches from (docs/tutorial.md): seed 003's Keras CNN (two 4×4
# convolutions, 3×3 pooling) and seed 004's (three 3×3 convolutions, 2×2 pooling; 101,578 parameters).
SEED_NETS = {
    "seed003": "1x28x28-32C4-MP3-64C4-MP3-64N-10N",
    "seed004": "1x28x28-32C3-MP2-64C3-MP2-128C3-MP2-64N-10N",
    "seed004-lenet": "1x32x32-6C5-MP2-16C5-MP2-120N-84N-10N",
}
EMPTY_NET = "1x28x28-10N"
_COLLAPSES = (
    "conv_collapse",
    "pool_collapse",
)  # the error codes of a map that collapses  # the input and the 10 outputs: softmax regression, to grow from


def with_input(net: str, size: str | None) -> str:
    """``net`` with its input token replaced by ``size`` (``CxHxW``), or with ``size`` put first where the
    net has no input token."""
    if not size:
        return net.strip()
    if not _SIZE.match(size):
        raise layer_error("input_size", size, 0, len(size) or 1, input=size)
    rest = _INPUT.sub("", net.strip(), count=1).lstrip("-")
    return f"{size.strip()}-{rest}" if rest else size.strip()


def _tokens(spec) -> list[dict]:
    """One entry per token of the text (a ``tok*n`` is one, with ``repeat`` n): its fields and the rows (module
    names) it makes, implied activations included."""
    from ..models.layerstring import module_names

    out: dict[tuple[int, int], dict] = {}
    for layer, name in zip(spec.layers, module_names(spec.layers), strict=True):
        entry = out.get(layer.span)
        if entry is not None:  # a repeat of the token, or the activation it implies
            entry["repeat"] += 0 if layer.implicit else 1
            entry["rows"].append(name)
            continue
        out[layer.span] = {
            "span": list(layer.span),
            "kind": layer.kind,
            "out": layer.out,
            "kernel": layer.kernel,
            "stride": layer.stride,
            "padding": layer.padding,
            "dilation": layer.dilation,
            "groups": layer.groups,
            "op": layer.op,
            "p": layer.p,
            "repeat": 1,
            "rows": [name],
        }
    return list(out.values())


def _collapse(text: str, error: LayerStringError) -> dict | None:
    """For a map that collapses: the layer, its output-size formula with the numbers, and the smallest
    square input that works (found by reading the string at other sizes: each read is ~0.1 ms)."""
    from ..models.layerstring import module_names, parse_layer_string

    if error.code not in _COLLAPSES:
        return None
    c = int(_INPUT.match(text).group(0).split("x")[0]) if _INPUT.match(text) else 1

    def works(side: int) -> bool:
        try:
            parse_layer_string(with_input(text, f"{c}x{side}x{side}"))
        except LayerStringError as e:
            return e.code not in _COLLAPSES
        return True

    lo, hi = 1, 1024
    if not works(hi):
        return {"smallest_input": None}
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if works(mid) else (mid + 1, hi)
    # the failing layer's numbers: read the string at a size that works, find the token, replay its input
    spec = parse_layer_string(with_input(text, f"{c}x{lo}x{lo}"))
    start = error.position - (len(text) - len(with_input(text, f"{c}x{lo}x{lo}")))
    names = module_names(spec.layers)
    index = next((i for i, layer in enumerate(spec.layers) if layer.span[0] == start), None)
    found = {"smallest_input": f"{c}x{lo}x{lo}", "layer": None, "formula": None}
    if index is None:
        return found
    layer, h, w = spec.layers[index], error.values["h"], error.values["w"]
    k, s, p, d = layer.kernel, layer.stride, layer.padding, layer.dilation
    n = h if conv_output_size(h, k, s, p, d) < 1 else w
    found["layer"] = names[index]
    found["input_side"] = n
    found["formula"] = (
        f"⌊(n + 2p − d·(k − 1) − 1)/s⌋ + 1 = ⌊({n} + 2·{p} − {d}·({k} − 1) − 1)/{s}⌋ + 1 = "
        f"{conv_output_size(n, k, s, p, d)}"
    )
    return found


def analyze_layer_string(net: str, input: str | None = None) -> dict:
    """The Build page's answer for one edit (see the module's docstring). Never raises for a bad string:
    a string that does not work is the answer ``{"ok": False, "error": {...}}``."""
    import torch

    from ..analysis.summary import summary
    from ..models.layerstring import build_from_spec, parse_layer_string

    try:
        text = with_input(net, input)
        spec = parse_layer_string(text)
    except LayerStringError as e:
        return {
            "ok": False,
            "net": e.text,
            "error": {
                "code": e.code,
                "values": e.values,
                "reason": e.reason,
                "reasons": reasons(e),
                "message": str(e).split("\n")[0],
                "position": e.position,
                "length": e.length,
                "collapse": _collapse(e.text, e),
            },
        }
    with torch.device("meta"):
        model = build_from_spec(spec)
    try:
        s = summary(model, spec.input).to_dict()
    except CnnzooError as e:  # a shape the string's arithmetic let through: the analyzer's word is final
        return {
            "ok": False,
            "net": text,
            "error": {
                "code": "",
                "values": {},
                "reason": str(e),
                "reasons": {"en": str(e)},
                "message": str(e),
                "position": 0,
                "length": len(text),
                "collapse": None,
            },
        }
    s["model"] = spec.text
    return {
        "ok": True,
        "net": spec.text,
        "canonical": str(spec),
        "input": list(spec.input),
        "tokens": _tokens(spec),
        "summary": s,
    }


@lru_cache(maxsize=1)
def start_nets() -> list[dict]:
    """The zoo's nets that a layer string writes (read back from their modules), the seeds' and the empty one."""
    import torch

    from ..models import create_model, list_models
    from ..models.layerstring import to_layer_string

    out = [{"group": "empty", "name": "empty", "net": EMPTY_NET}]
    out += [{"group": "seed", "name": key, "key": key, "net": net} for key, net in SEED_NETS.items()]
    for name in list_models():
        try:
            with torch.device("meta"):
                model = create_model(name)
            out.append({"group": "zoo", "name": name, "net": to_layer_string(model)})
        except (CnnzooError, TypeError, ValueError):
            continue  # a net the notation cannot write (LeNet-5's sparse C3, an RBF output, …)
    return out


router = APIRouter()


@router.get("/api/build/check", summary="A layer string's table, or why it does not work")
def check(
    net: str = Query(..., max_length=4000, description="a layer string, e.g. 1x28x28-32C3-MP2-10N"),
    input: str | None = Query(None, max_length=40, description="CxHxW: replaces the string's input"),
) -> JSONResponse:
    start = time.perf_counter()
    answer = analyze_layer_string(net, input)
    took = f"analyze;dur={1000 * (time.perf_counter() - start):.1f}"  # shown in the browser's timings
    return JSONResponse(answer, headers={"Server-Timing": took})  # plain JSON: no jsonable_encoder pass


@router.get("/api/build/starts", summary="Nets to start from: the zoo's, the seeds', an empty one")
def starts() -> dict:
    return {"nets": start_nets()}
