"""The words of the explanations, in English and in Chinese (the seed texts' terms: 卷积层, 池化层/下采样层, 卷积核/池化核,
感受野, 参数, 连接数, 步幅, 填充, 乘加运算), and their renderings as text and Markdown.

Formulas are mathematics and the same in both languages; labels, notes and sources are looked up here by key.
"""

from __future__ import annotations

from ..figures import figure

LANGS = ("en", "zh")

# key -> (English, Chinese); str.format fields are filled by the caller. The figures' own names are
# cnnzoo.figures.FIGURES'.
MESSAGES: dict[str, tuple[str, str]] = {
    # line labels
    "dim_h": ("height", "高"),
    "dim_w": ("width", "宽"),
    "dim_hw": ("height = width", "高 = 宽"),
    "window_values": (
        "{dim}: n = input {n}, k = kernel {k}, s = stride {s}, p = padding {p}",
        "{dim}：n = 输入 {n}，k = {kernel} {k}，s = 步幅 {s}，p = 填充 {p}",
    ),
    "dilation_values": (", d = dilation {d}", "，d = 空洞率 {d}"),
    "flatten": ("flattened: C·H·W", "展平：C·H·W"),
    "rf_step": ("{layer}: kernel {k}, stride {s}", "{layer}：{kernel} {k}，步幅 {s}"),
    "conv_kernel": ("kernel", "卷积核"),
    "pool_kernel": ("kernel", "池化核"),  # seed 003's term for a pooling window
    "rf_unrolled": ("the recurrence unrolled", "递推式展开"),
    "rf_jump": ("{layer}: jump j = j_prev·s", "{layer}：跳距 j = j_prev·s"),
    "sum_of_layers": ("sum over the block's layers", "块内各层之和"),
    "without_1x1": (
        "without the 1×1 reduction (a direct {k}×{k} conv, {c_in} → {c_out} channels)",
        "不用 1×1 降维（直接 {k}×{k} 卷积，{c_in} → {c_out} 通道）",
    ),
    "table1": ("Table I: maps reading m input maps, counted per m", "表 I：按读取的输入图数 m 分组"),
    "bias_terms": ("weights + biases", "权重 + 偏置"),
    "rbf_centres": (
        "one centre of in values per class (out classes)",
        "每类一个中心，各 in 个值（out 个类别）",
    ),
    "per_element": ("{kind}", "{kind}"),
    "elements": ("elements × bytes per element", "元素数 × 每元素字节数"),
    # notes
    "note_same_shape": ("keeps its input's shape", "输出与输入形状相同"),
    "note_residual": (
        "adds two {shape} tensors, z[l+{k}] + a[l] (the notation of Ng's course, seed 000): a[l] is the "
        "block's input ({a}'s output), carried by the shortcut{via}; z[l+{k}] is the main path's output "
        "before its last activation ({z}'s output). The activation that follows gives "
        "a[l+{k}] = g(z[l+{k}] + a[l]); the shape stays {shape}",
        "把两个 {shape} 张量相加，z[l+{k}] + a[l]（吴恩达课程的记号，种子 000）：a[l] 是块的输入（{a} 的输出），"
        "经跳跃连接送来{via}；z[l+{k}] 是主路径最后一次激活前的输出（{z} 的输出）。随后的激活函数给出 "
        "a[l+{k}] = g(z[l+{k}] + a[l])；形状仍为 {shape}",
    ),
    "residual_via": (" through {rows}", "，途经 {rows}"),
    "the_input": ("the input", "输入"),
    "note_linear": ("a fully connected layer gives out_features = {n}", "全连接层输出 out_features = {n}"),
    "note_adaptive": ("adaptive pooling gives the requested size {hw}", "自适应池化层输出指定尺寸 {hw}"),
    "note_channels": ("channels C = {c} (the layer's output channels)", "通道数 C = {c}（该层的输出通道数）"),
    "note_repeat": (
        "the layer's parameters are counted at its first call ({first})",
        "该层参数只在第一次调用时计数（{first}）",
    ),
    "note_no_params": ("no parameters", "无参数"),
    "note_rbf_fixed": (
        "fixed, not trained: {out} centres of {n} values, ±1 codes set before training (LeNet-5's: 7×12 "
        "bitmaps of the digits) and never updated, so 0 of the {total} are trainable",
        "固定值，不参与训练：{out} 个中心，各 {n} 个值，是训练前设定的 ±1 编码（LeNet-5 的是数字的 7×12 位图），"
        "训练中不更新，{total} 个中可训练的为 0",
    ),
    "note_no_work": ("no arithmetic counted for this layer", "此层不计运算"),
    "note_dispatcher": (
        "counted at the dispatcher: the sum over the ATen operations this call ran (matrix products and "
        "convolutions by PyTorch's torch.utils.flop_counter formulas, MACs = FLOPs / 2; elementwise one FLOP "
        "per output; connections = MACs)",
        "在调度层计数：本次调用运行的全部 ATen 运算之和（矩阵乘与卷积按 PyTorch 的 torch.utils.flop_counter "
        "公式，MAC = FLOP / 2；逐元素运算每个输出 1 FLOP；连接数 = MAC）",
    ),
    "note_dispatcher_rf": (
        "followed through the ATen operations this call ran (windows of convolutions and pools, transposed "
        "convolutions, upsampling; attention sees the whole input)",
        "沿本次调用运行的 ATen 运算推算（卷积与池化的窗口、转置卷积、上采样；注意力看到整个输入）",
    ),
    "src_dispatcher": (
        "cnnzoo.analysis.dispatch (a TorchDispatchMode)",
        "cnnzoo.analysis.dispatch（TorchDispatchMode）",
    ),
    "note_ceil": (
        "ceil_mode: rounded up, but the last window must start inside the input or the left padding",
        "ceil_mode：向上取整，但最后一个窗口须从输入或左侧填充内开始",
    ),
    "note_ceil_drop": (" (here it would not, so one less)", "（此处不满足，故减一）"),
    "note_same_pad": ("'same' padding: p = d·(k − 1)/2 on each side", "'same' 填充：每侧 p = d·(k − 1)/2"),
    "note_rf_input": ("the input pixel: r = 1, j = 1", "输入像素：r = 1，j = 1"),
    "note_rf_flat": (
        "a full layer over an H×W map is a conv with an H×W kernel",
        "对 H×W 特征图的全连接层相当于 H×W 卷积核",
    ),
    "note_saving": ("the 1×1 reduction saves {ratio:.1f}× the MACs", "1×1 降维节省 {ratio:.1f} 倍乘加运算"),
    "note_block": (
        "block {name} ({kind}): layers {first} … {last}",
        "块 {name}（{kind}）：层 {first} … {last}",
    ),
    "note_kind": ("{kind}", "{kind}"),
    # sources
    "src_window": (
        "PyTorch's output-size rule, out = ⌊(n + 2p − d·(k − 1) − 1)/s⌋ + 1 (cnnzoo.shapes.conv_output_size)",
        "PyTorch 输出尺寸公式 out = ⌊(n + 2p − d·(k − 1) − 1)/s⌋ + 1（cnnzoo.shapes.conv_output_size）",
    ),
    "src_shape": (
        "the layer's shape rule (cnnzoo.analysis.specs)",
        "该层的形状规则（cnnzoo.analysis.specs）",
    ),
    "src_params": ("the layer's weights and biases", "该层的权重与偏置"),
    "src_rbf": (
        "LeCun et al. 1998, Sec. II-B and Fig. 3: the RBF parameter vectors (cnnzoo.layers.RBFOutput)",
        "LeCun 等 1998，第 II-B 节与图 3：RBF 参数向量（cnnzoo.layers.RBFOutput）",
    ),
    "src_table1": (
        "LeCun et al. 1998, Table I (cnnzoo.layers.LENET5_C3_TABLE)",
        "LeCun 等 1998，表 I（cnnzoo.layers.LENET5_C3_TABLE）",
    ),
    "src_macs": (
        "multiply-accumulates against weights (cnnzoo.analysis.rules, docs/analyzer.md)",
        "与权重的乘加运算（cnnzoo.analysis.rules，docs/analyzer.md）",
    ),
    "src_flops": (
        "2 × MACs + bias adds + elementwise work (cnnzoo.analysis.rules)",
        "2 × 乘加运算 + 偏置加法 + 逐元素运算（cnnzoo.analysis.rules）",
    ),
    "src_connections": (
        "LeCun 1998: each input-to-output link, the bias counted as one input (cnnzoo.analysis.rules)",
        "LeCun 1998：每条输入到输出的连接，偏置算作一个输入（cnnzoo.analysis.rules）",
    ),
    "src_rf": (
        "r = r_prev + (k − 1)·j_prev (d·(k − 1) with dilation), j = j_prev·s (cnnzoo.analysis.schema.ReceptiveField)",
        "r = r_prev + (k − 1)·j_prev（空洞卷积为 d·(k − 1)），j = j_prev·s（cnnzoo.analysis.schema.ReceptiveField）",
    ),
    "src_memory": ("output elements × element size, per image", "输出元素数 × 每元素字节数，每张图像"),
    "src_block": ("the sum of the block's rows", "块内各行之和"),
    # layer kinds
    "kind_conv": ("convolutional layer", "卷积层"),
    "kind_pool": ("pooling layer", "池化层"),
    "kind_subsampling": ("subsampling layer", "下采样层"),
    "kind_full": ("fully connected layer", "全连接层"),
    "kind_norm": ("normalisation layer", "归一化层"),
    "kind_act": ("activation", "激活函数"),
    "kind_add": ("elementwise operation", "逐元素运算"),
    "kind_rbf": ("RBF output layer", "RBF 输出层"),
    # renderings
    "source": ("source", "来源"),
    "formula": ("formula", "公式"),
    "layer": ("layer", "层"),
    "field": ("figure", "数值"),
    "value": ("value", "值"),
}


def msg(key: str, lang: str = "en", **values) -> str:
    """The message ``key`` in ``lang``, its fields filled."""
    text = MESSAGES[key][LANGS.index(lang)]
    return text.format(**values) if values else text


def figure_name(key: str, lang: str) -> str:
    """What an explanation calls the figure ``key`` in ``lang``."""
    return figure(key).name[LANGS.index(lang)]


def number(n) -> str:
    """Numbers as printed in formulas: thousands separated (2,416), halves as decimals (2.5)."""
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    return f"{n:,}" if isinstance(n, int) else f"{n:g}"


def shape_text(shape) -> str:
    return "×".join(str(s) for s in shape)


def value_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return shape_text(value)
    if isinstance(value, dict):  # a receptive field
        return f"{value['size']} (j = {value['jump']})"
    return number(value)


def one_line(e) -> str:
    """One explanation on one line: ``layer  field  filled formula`` (the last line's, the one that ends in
    the figure), or the note where there is no arithmetic."""
    last = e.lines[-1].filled if e.lines else f"{value_text(e.value)} ({e.note})"
    return f"{e.layer}  {figure_name(e.field, e.lang)}: {last}"


def to_text(e) -> str:
    """An explanation in full: the figure, each line with its symbols and its values, notes, the source."""
    out = [f"{e.layer} · {figure_name(e.field, e.lang)} = {value_text(e.value)}"]
    for line in e.lines:
        if line.label:
            out.append(f"  {line.label}")
        out.append(f"    {line.formula}")
        out.append(f"    {line.filled}")
    if e.note:
        out.append(f"  {e.note}")
    out.append(f"  {msg('source', e.lang)}: {e.source}")
    return "\n".join(out)


def to_markdown(explanations) -> str:
    """A Markdown table, one row per explanation line (or per note)."""
    if not explanations:
        return ""
    lang = explanations[0].lang
    head = [msg(k, lang) for k in ("layer", "field", "formula", "value")]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in explanations:
        for line in e.lines or [None]:
            filled = line.filled if line else e.note
            formula = (
                f"{line.label}: {line.formula}" if line and line.label else (line.formula if line else "")
            )
            cells = [
                f"`{e.layer}`",
                figure_name(e.field, lang),
                formula.replace("|", "\\|"),
                filled.replace("|", "\\|"),
            ]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
