"""The papers' own layer names as aliases of the analyzer's rows: ``C3``/``S2``/``F6`` for LeNet-5 (any
case), ``conv1_1`` … ``conv5_3`` and ``fc6`` … ``fc8`` for VGG (Simonyan & Zisserman, Table 1) and AlexNet
(``conv1`` … ``conv5``), ``conv2_x`` … ``conv5_x`` for ResNet's stages (He et al. 2015, Table 1)."""

from __future__ import annotations

import re

from ..errors import CnnzooError

__all__ = ["resolve_layer"]


def _convs_by_block(summary) -> list[list[str]]:
    """Conv rows grouped into the blocks that pooling layers close."""
    blocks: list[list[str]] = [[]]
    for row in summary.layers:
        if row.type == "Conv2d":
            blocks[-1].append(row.name)
        elif "Pool" in row.type and blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def resolve_layer(summary, name: str) -> list[str]:
    """The row or block names ``name`` means in ``summary``: itself if it is one, else its paper alias."""
    rows = [r.name for r in summary.layers] + [b.name for b in summary.blocks]
    if name in rows:
        return [name]
    folded = [r for r in rows if r.lower() == name.lower()]
    if folded:
        return folded[:1]
    convs = [r.name for r in summary.layers if r.type == "Conv2d"]
    linears = [r.name for r in summary.layers if r.type == "Linear"]
    found: list[str] = []
    if m := re.fullmatch(r"conv(\d+)_(\d+)", name, re.I):  # VGG: block b, conv i
        blocks = _convs_by_block(summary)
        b, i = int(m[1]) - 1, int(m[2]) - 1
        found = [blocks[b][i]] if 0 <= b < len(blocks) and 0 <= i < len(blocks[b]) else []
    elif m := re.fullmatch(r"conv(\d+)_x", name, re.I):  # ResNet: conv2_x is the first stage of blocks
        stage = f"layer{int(m[1]) - 1}."
        found = [b.name for b in summary.blocks if b.name.startswith(stage)]
    elif m := re.fullmatch(r"conv(\d+)", name, re.I):  # AlexNet: the k-th convolution
        k = int(m[1]) - 1
        found = [convs[k]] if 0 <= k < len(convs) else []
    elif m := re.fullmatch(r"fc(\d+)", name, re.I):  # VGG and AlexNet: fc6 is the first fully connected layer
        k = int(m[1]) - 6
        found = [linears[k]] if 0 <= k < len(linears) else []
    if not found:
        raise no_such_layer(summary, name)
    return found


def no_such_layer(summary, name: str) -> CnnzooError:
    """The one-line error for a layer name the net does not have, listing every layer and block it has."""
    names = ", ".join(r.name for r in summary.layers)
    blocks = f"; its blocks: {', '.join(b.name for b in summary.blocks)}" if summary.blocks else ""
    return CnnzooError(f"no layer or block {name!r} in {summary.model}; its layers: {names}{blocks}")
