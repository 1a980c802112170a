"""Why a layer string does not work, in English and in Chinese: the one table of its messages.

Every :class:`~cnnzoo.errors.LayerStringError` that the grammar (:mod:`cnnzoo.models.layergrammar`), its
arithmetic (:mod:`cnnzoo.models.layershapes`) and the builder (:mod:`cnnzoo.models.layerstring`) raise is
made here by :func:`layer_error`: a stable code, the values that say what went wrong (the token, the
numbers, the cap), and its reason rendered from :data:`MESSAGES` in English (what the CLI prints).
:func:`reason` renders the same code and values in Chinese for the Build page (``/api/build/check``'s
``error.reasons``), with the seed texts' terms (卷积层, 池化层, 全连接层, 步幅, 填充, 通道数).
"""

from __future__ import annotations

from ..errors import LayerStringError

__all__ = ["LANGS", "MESSAGES", "layer_error", "reason", "reasons"]

LANGS = ("en", "zh")

# The layer kinds as a message names them ({kind_name}); the web page's own names (i18n.js "build.kind.*")
# are the same Chinese words (tests/test_build_api.py compares them).
KIND_NAMES = {
    "en": {
        "conv": "convolution",
        "pool": "pooling layer",
        "gpool": "global pooling",
        "res": "residual block",
        "fc": "fully connected layer",
    },
    "zh": {"conv": "卷积层", "pool": "池化层", "gpool": "全局池化", "res": "残差块", "fc": "全连接层"},
}
# A token option's field as a message names it ({field_name}, and each option of {allowed}).
FIELD_NAMES = {
    "en": {"padding": "padding", "stride": "stride", "dilation": "dilation", "groups": "groups"},
    "zh": {"padding": "填充", "stride": "步幅", "dilation": "空洞", "groups": "分组"},
}
_EXPECTED = {
    "en": "kCs (conv), MPs/APs (pool), GAP/GMP, kN (fully connected), BN, Dp (dropout), Rk (residual), an activation",
    "zh": "kCs（卷积层）、MPs/APs（池化层）、GAP/GMP（全局池化）、kN（全连接层）、BN（批归一化）、Dp（丢弃）、"
    "Rk（残差块）或一个激活函数",
}

# code -> its message in each language: str.format templates over the error's values, plus {kind_name},
# {field_name} and {allowed} (a token's options), named in the message's language.
MESSAGES: dict[str, dict[str, str]] = {
    "not_text": {
        "en": "a layer string must be text, not {type}",
        "zh": "层字符串必须是文本，而不是 {type}",
    },
    "too_long": {
        "en": "longer than {max} characters (MAX_STRING_LENGTH)",
        "zh": "超过 {max} 个字符（MAX_STRING_LENGTH）",
    },
    "input_first": {
        "en": "the input must come first, as CxHxW (e.g. 1x28x28)",
        "zh": "输入必须写在最前面，格式为 C×H×W（例如 1x28x28）",
    },
    "input_size": {
        "en": "the input must be CxHxW (e.g. 1x28x28)",
        "zh": "输入必须写成 C×H×W（例如 1x28x28）",
    },
    "input_range": {
        "en": "input sides must be 1..{max_side} (MAX_INPUT_SIDE), channels 1..{max_channels}",
        "zh": "输入的边长必须在 1..{max_side} 之间（MAX_INPUT_SIDE），通道数在 1..{max_channels} 之间",
    },
    "no_layers": {"en": "no layers after the input", "zh": "输入之后没有任何层"},
    "empty_layer": {
        "en": "an empty layer (two '-' in a row?): expected " + _EXPECTED["en"],
        "zh": "空的层（连续两个 '-'？）：应为 " + _EXPECTED["zh"],
    },
    "unknown_layer": {
        "en": "unknown layer {token!r}: expected " + _EXPECTED["en"],
        "zh": "未知的层 {token!r}：应为 " + _EXPECTED["zh"],
    },
    "unknown_option": {
        "en": "unknown option {letter!r}: a {kind} takes {allowed}",
        "zh": "未知的选项 {letter!r}：{kind_name}只接受 {allowed}",
    },
    "option_twice": {"en": "{field} given twice", "zh": "{field_name}（{letter}）写了两次"},
    "bad_repeat": {
        "en": "a repeat is *n with n in 1..{max} (MAX_REPEAT)",
        "zh": "重复写作 *n，n 在 1..{max} 之间（MAX_REPEAT）",
    },
    "too_many_layers": {"en": "more than {max} layers (MAX_LAYERS)", "zh": "超过 {max} 层（MAX_LAYERS）"},
    "too_many_layers_with_activations": {
        "en": "more than {max} layers with the activations (MAX_LAYERS)",
        "zh": "加上激活函数超过 {max} 层（MAX_LAYERS）",
    },
    "needs_maps": {
        "en": "a {kind_name} needs feature maps, but a fully connected layer came before it",
        "zh": "{kind_name}需要特征图，但它前面已经有全连接层",
    },
    "width_range": {
        "en": "width must be 1..{max} (MAX_WIDTH)",
        "zh": "通道数（或单元数）{width} 必须在 1..{max} 之间（MAX_WIDTH）",
    },
    "conv_at_least_1": {
        "en": "kernel, stride, dilation and groups must be at least 1",
        "zh": "卷积核、步幅、空洞和分组都必须至少为 1",
    },
    "groups_divide": {
        "en": "groups={groups} must divide the {channels} input channels and the {out} maps",
        "zh": "分组数 g={groups} 必须整除 {channels} 个输入通道和 {out} 个特征图",
    },
    "conv_collapse": {
        "en": "a {h}x{w} map is too small for this kernel (the map would collapse)",
        "zh": "{h}×{w} 的特征图对这个卷积核太小（特征图会坍缩）",
    },
    "pool_at_least_1": {
        "en": "kernel and stride must be at least 1",
        "zh": "池化窗口和步幅都必须至少为 1",
    },
    "pool_padding": {
        "en": "padding {padding} is more than half the kernel {kernel}",
        "zh": "填充 {padding} 超过了池化窗口 {kernel} 的一半",
    },
    "pool_collapse": {
        "en": "a {h}x{w} map is too small for this pooling window (the map would collapse)",
        "zh": "{h}×{w} 的特征图对这个池化窗口太小（特征图会坍缩）",
    },
    "dropout_range": {
        "en": "a dropout probability is at least 0 and below 1",
        "zh": "丢弃概率必须不小于 0 且小于 1",
    },
    "res_stride": {"en": "stride must be at least 1", "zh": "步幅必须至少为 1"},
    "shortcut_a": {
        "en": "shortcut A pads channels with zeros: it cannot go from {channels} down to {out}",
        "zh": "捷径 A 用零补齐通道：不能把通道数从 {channels} 减少到 {out}",
    },
    "too_many_values": {
        "en": "its output has {elements:,} values, over {max:,} (MAX_FEATURE_ELEMENTS)",
        "zh": "它的输出有 {elements:,} 个值，超过 {max:,}（MAX_FEATURE_ELEMENTS）",
    },
    "too_many_params": {
        "en": "the net passes {max:,} parameters here (MAX_PARAMS)",
        "zh": "网络到这里的参数超过 {max:,}（MAX_PARAMS）",
    },
    "too_many_macs": {
        "en": "the net passes {max:,} multiply-accumulates here (MAX_MACS)",
        "zh": "网络到这里的乘加运算超过 {max:,}（MAX_MACS）",
    },
    "num_classes_needs_fc": {
        "en": "num_classes={num_classes} needs a last kN layer to set",
        "zh": "类别数 num_classes={num_classes} 需要最后一个 kN 层来设定",
    },
    "no_token": {
        "en": "{model}: {name} ({type}) has no layer-string token",
        "zh": "{model}：{name}（{type}）没有对应的层字符串记号",
    },
    "bias_before_bn": {
        "en": "{model}: its layer {index} ({type}) has a bias before its BN",
        "zh": "{model}：第 {index} 层（{type}）在 BN 之前有偏置",
    },
    "no_bias_no_bn": {
        "en": "{model}: its layer {index} ({type}) has no bias and no BN after it",
        "zh": "{model}：第 {index} 层（{type}）没有偏置，后面也没有 BN",
    },
}


def _named(values: dict, lang: str) -> dict:
    """``values`` with the names a message uses in ``lang``: the kind's, the field's, the allowed options'."""
    named = dict(values)
    if "kind" in values:
        named["kind_name"] = KIND_NAMES[lang].get(values["kind"], values["kind"])
    if "field" in values:
        named["field_name"] = FIELD_NAMES[lang][values["field"]]
    if "options" in values:
        sep, fmt = (", ", "{} ({})") if lang == "en" else ("、", "{}（{}）")
        names = FIELD_NAMES[lang]
        named["allowed"] = sep.join(fmt.format(c, names[f]) for c, f in values["options"].items())
    return named


def reason(code: str, values: dict, lang: str = "en") -> str:
    """The message of ``code`` with ``values`` in ``lang`` ("en" or "zh")."""
    return MESSAGES[code][lang].format(**_named(values, lang))


def reasons(error: LayerStringError) -> dict[str, str]:
    """``error``'s reason in every language (only English where it has no code)."""
    if error.code not in MESSAGES:
        return {"en": error.reason}
    return {lang: reason(error.code, error.values, lang) for lang in LANGS}


def layer_error(code: str, text: str, position: int, length: int = 1, /, **values) -> LayerStringError:
    """The error ``code`` with ``values`` (JSON's types: numbers, text, a dict of text), at ``position`` in
    ``text``: its reason is the English message; raise it."""
    return LayerStringError(reason(code, values), text, position, length, code=code, values=values)
