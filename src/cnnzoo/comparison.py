"""``cnnzoo.compare("vgg16", "resnet18")``: networks side by side, from the analyzer's own figures.

Parameters, MACs, FLOPs, the receptive field of the last layer, the memory of the weights (fp32) and of one
image's activations, each with its ratio to the first network, in English or Chinese. Any model argument
works (zoo names, layer strings, files, torchvision:/timm: names) and so do built modules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .analysis.summary import Summary, summary
from .errors import CnnzooError
from .notebook import html_table, markdown_table
from .shapes import parse_input_size

__all__ = ["Comparison", "compare", "LABELS"]

# row key -> (English label, Chinese label)
LABELS = {
    "input": ("input", "输入"),
    "params": ("parameters", "参数"),
    "macs": ("MACs", "乘加次数 (MACs)"),
    "flops": ("FLOPs", "浮点运算 (FLOPs)"),
    "receptive_field": ("receptive field (px)", "感受野（像素）"),
    "weights_mib": ("weights, fp32 (MiB)", "权重，fp32（MiB）"),
    "activations_mib": ("activations per image (MiB)", "每张图的激活（MiB）"),
}
_TITLE = {"en": "ratios to the first network in brackets", "zh": "括号内为与第一个网络之比"}
MAX_MODELS = 8


@dataclass
class Comparison:
    """One column per network: ``rows[key][i]`` is network ``i``'s figure (None where it has none)."""

    names: list[str]
    rows: dict[str, list]
    lang: str = "en"

    def to_dict(self) -> dict:
        return {"models": list(self.names), "rows": {k: list(v) for k, v in self.rows.items()}}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def ratio(self, key: str, i: int) -> float | None:
        first, value = self.rows[key][0], self.rows[key][i]
        if not isinstance(value, (int, float)) or not isinstance(first, (int, float)) or not first:
            return None
        return value / first

    def cells(self, key: str) -> list[str]:
        out = []
        for i, v in enumerate(self.rows[key]):
            if v is None:
                out.append("–")
                continue
            text = (
                "×".join(map(str, v))
                if isinstance(v, (list, tuple))
                else f"{v:,.1f}"
                if isinstance(v, float)
                else f"{v:,}"
            )
            r = self.ratio(key, i) if i else None
            out.append(text if r is None else f"{text} ({r:.3g}×)")
        return out

    def table(self) -> tuple[list[str], list[list[str]]]:
        lang = 1 if self.lang == "zh" else 0
        header = ["", *self.names]
        return header, [[LABELS[k][lang], *self.cells(k)] for k in self.rows]

    def __str__(self) -> str:
        header, body = self.table()
        widths = [max(_width(r[i]) for r in [header, *body]) for i in range(len(header))]
        lines = [
            "  ".join(_pad(c, w, i) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in [header, *body]
        ]
        return "\n".join(line.rstrip() for line in lines) + f"\n({_TITLE[self.lang]})"

    def _repr_markdown_(self) -> str:
        return markdown_table(*self.table(), note=_TITLE[self.lang])

    def _repr_html_(self) -> str:  # Jupyter
        return html_table(*self.table(), note=_TITLE[self.lang])


def _width(text: str) -> int:
    return sum(2 if "\u4e00" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef" else 1 for ch in text)


def _pad(text: str, width: int, column: int) -> str:
    space = " " * (width - _width(text))
    return text + space if column == 0 else space + text


def _figures(s: Summary) -> dict:
    total = s.total
    rf = total.get("receptive_field") or (
        s.layers[-1].receptive_field.to_dict() if s.layers and s.layers[-1].receptive_field else None
    )
    return {
        "input": list(s.input),
        "params": total.get("params"),
        "macs": total.get("macs"),
        "flops": total.get("flops"),
        "receptive_field": rf.get("size") if isinstance(rf, dict) else None,
        "weights_mib": total["params"] * 4 / 2**20 if total.get("params") is not None else None,
        "activations_mib": total["activation_bytes"] / 2**20
        if total.get("activation_bytes") is not None
        else None,
    }


def compare(*models, input_size=None, lang: str = "en", allow_code: bool = True) -> Comparison:
    """Compare networks (model arguments or modules) at their own input sizes, or all at ``input_size``
    ((C, H, W) or "CxHxW"). ``allow_code=False`` (the web app) accepts zoo names and layer strings only."""
    from .models.source import check_model_arg

    if len(models) == 1 and isinstance(models[0], (list, tuple)):
        models = tuple(models[0])
    if not 2 <= len(models) <= MAX_MODELS:
        raise CnnzooError(f"compare takes 2 to {MAX_MODELS} networks, got {len(models)}")
    if lang not in ("en", "zh"):
        raise CnnzooError(f"lang must be 'en' or 'zh', not {lang!r}")
    size = parse_input_size(input_size) if input_size is not None else None
    summaries = []
    for m in models:
        if isinstance(m, str):
            check_model_arg(m, allow_code)
        summaries.append(summary(m, size))
    figures = [_figures(s) for s in summaries]
    rows = {key: [f[key] for f in figures] for key in LABELS}
    return Comparison([s.model for s in summaries], rows, lang)
