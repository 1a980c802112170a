"""What each counting convention counts, in words (English and 中文), and the text of
``cnnzoo explain --convention``: one convention by operation kind, or all of them side by side."""

from __future__ import annotations

from .conventions import RULES, ConventionCount, recording

__all__ = ["COUNTS", "COUNTS_ZH", "describe", "side_by_side"]

# what each counts, in one line (explain prints it)
COUNTS = {
    "cnnzoo": "every operation the forward runs (conv/linear MACs; FLOPs for the rest), every parameter",
    "paper": "multiply-adds of convolutions and fully connected layers only (no bias, BN, activation, "
    "pooling, addition)",
    "torchinfo": "per layer, weight and bias elements × output positions: conv and linear MACs + biases + "
    "2·C per batch norm",
    "fvcore": "one per MAC of conv/linear/matmul/einsum; batch norm 2 per element, adaptive average pool 1 per "
    "input element; no activations, max pooling or additions",
    "ptflops": "conv/linear MACs + biases, batch norm 2 per element, activations 1 per output, pooling 1 per "
    "input (twice where a module calls a patched function: nn.ReLU → F.relu); trainable parameters",
    "thop": "conv/linear MACs without bias, batch norm 4 per element (affine); 0 for ReLU, max pooling and "
    "operations outside modules (the residual add); parameters of modules with a rule",
}
COUNTS_ZH = {
    "cnnzoo": "前向中的每个运算（卷积/全连接按 MAC，其余按 FLOP），每个参数",
    "paper": "只计卷积与全连接层的乘加（不计偏置、BN、激活、池化、加法）",
    "torchinfo": "每层权重与偏置元素数 × 输出位置数：卷积/全连接 MAC + 偏置 + 每个 BN 2·C",
    "fvcore": "卷积/全连接/matmul/einsum 每个 MAC 计 1；BN 每元素 2，自适应平均池化每输入元素 1；不计激活、最大池化、加法",
    "ptflops": "卷积/全连接 MAC + 偏置，BN 每元素 2，激活每输出 1，池化每输入 1（模块调用被替换的函数时计两次：nn.ReLU → F.relu）；只计可训练参数",
    "thop": "卷积/全连接 MAC 不计偏置，BN 每元素 4（带仿射）；ReLU、最大池化和模块外的运算（残差加法）计 0；只计有规则的模块的参数",
}


def side_by_side(s, lang: str = "en") -> str:
    """Every convention's MACs and parameters for a summary's model, one line each, with what it counts."""
    from .render import si_count

    rec = recording(*s.source, s.inputs and list(zip(s.inputs, s.dtypes, strict=True)) or [(s.input, None)])
    counts = [(name, s.total["macs"], s.total["params"]) for name in ("cnnzoo",)]
    counts += [(name, c.macs, c.params) for name, c in ((n, rule(rec)) for n, rule in RULES.items())]
    text = COUNTS_ZH if lang == "zh" else COUNTS
    shape = "×".join(map(str, s.input))
    head = "各约定计得的 MAC 与参数" if lang == "zh" else "MACs and parameters as each convention counts them"
    lines = [f"{s.model}, input {shape}: {head}"]
    for name, macs, params in counts:
        lines.append(f"  {name:<9} {macs:>17,} ({si_count(macs):>7})  {params:>13,}  {text[name]}")
    return "\n".join(lines)


def describe(s, layer: str | None = None, lang: str = "en") -> str:
    """What a summary's convention counts, by operation kind, and how far it is from cnnzoo's MACs."""
    from .render import si_count

    c: ConventionCount = s.convention_count
    if layer is not None and not any(r.name == layer or r.name.startswith(layer + ".") for r in s.layers):
        from .aliases import resolve_layer

        layer = resolve_layer(s, layer)[0]  # the papers' names; an unknown one is refused there
    items = (
        c.items if layer is None else [i for i in c.items if i[0] == layer or i[0].startswith(layer + ".")]
    )
    ours = (
        s.total["macs"]
        if layer is None
        else sum(r.macs for r in s.layers if r.name == layer or r.name.startswith(layer + "."))
    )
    total = sum(n for *_, n in items)
    zh = lang == "zh"
    head = f"{s.model}" + (f" {layer}" if layer else "")
    lines = [
        f"{head} · {c.convention}: {total:,} MACs ({si_count(total)})"
        + (f", {c.params:,} {'参数' if zh else 'params'}" if layer is None else ""),
        f"  {'计入' if zh else 'counts'}: {(COUNTS_ZH if zh else COUNTS)[c.convention]}",
    ]
    kinds: dict[str, int] = {}
    for _, kind, n in items:
        kinds[kind] = kinds.get(kind, 0) + n
    width = max((len(k) for k in kinds), default=0)
    lines += [f"    {k:<{width}}  {n:>16,}" for k, n in kinds.items() if n]
    diff = total - ours
    word = "与 cnnzoo 的 MAC 之差" if zh else "against cnnzoo's MACs"
    lines.append(f"  {word} ({ours:,}): {diff:+,}")
    if layer is None and c.params != s.total["params"]:
        word = "与 cnnzoo 的参数之差" if zh else "against cnnzoo's params"
        lines.append(f"  {word} ({s.total['params']:,}): {c.params - s.total['params']:+,}")
    return "\n".join(lines)
