// English / 中文 for every page: one string table (STRINGS; en and zh have the same keys, a test checks it), a
// switch in the header, `?lang=zh` in the URL; the choice is remembered (localStorage). Every string a page
// shows comes from here: t("key", {vars}) in JS; data-i18n="key" in HTML gets its first text node translated
// (a label keeps its input); data-i18n-placeholder, -title, -alt and -aria (aria-label) translate those
// attributes. Pages listen to the "langchange" event to redraw what they built in JS. A new page adds its keys
// to both tables, prefixed with its id ("build.…"), plus "nav.<id>" and "brand.<id>" for the header (nav.js).
// Chinese terms are the seed texts' (卷积层, 池化层/下采样层, 感受野, 跳距, 参数, 连接数, 步幅, 填充, 乘加运算).
// Names that come from the data (class names, model families) are translated by DATA_ZH; English shows them
// as they are.
"use strict";

const STRINGS = {
  en: {
    "nav.predict": "Predict", "nav.explore": "Explore architectures", "nav.train": "Train", "nav.api": "API",
    "brand.predict": "watch a CNN see", "brand.explore": "layer by layer", "brand.train": "watch a CNN learn",
    "lang": "Language",
    // explorer
    "form.model": "Model", "form.input": "Input (C×H×W)", "form.analyze": "Analyze",
    "totals": "Totals", "diagram": "Diagram", "layers": "Layers", "explanation": "Explanation",
    "diagram.note": "— each box is a layer's output: height ∝ H×W (log), depth ∝ channels (log), as in LeNet-5's Fig. 2",
    "explain.hint": "Click any number in the table (or Tab to it) to see how it is computed; the layers it comes from light up.",
    "explain.more": "{n} more steps",
    "col.layer": "layer", "col.type": "type", "col.kernel": "kernel", "total": "total", "in": "in",
    "tot.trainable": "trainable", "at": "at", "source": "source", "loading": "…",
    "desc.model": "{description} — {paper}",
    "conventions": "MACs = multiply-accumulates with weights (conv, linear; LeNet subsampling and RBF); FLOPs = 2×MACs + bias adds + activations/pooling/normalisation/additions (rules: docs/analyzer.md); connections by LeCun's rule (bias = one input); per image.",
    // predict
    "draw": "Draw", "clear": "Clear", "brush": "brush", "invert": "invert", "invert.auto": "auto",
    "invert.yes": "always", "invert.no": "never", "fit": "centre on the strokes", "upload": "Upload an image…",
    "hint.draw": "Draw with a mouse, pen or finger: black on white. The network was trained on {dataset}; if that is light-on-dark, your drawing is inverted to match (see “what the network sees”).",
    "hint.dataset": "its dataset",
    "predict.empty": "draw something…",
    "banner.untrained": "No trained checkpoint found: this is an untrained {model} with random weights, so its guesses mean nothing. Train one with `cnnzoo train` and restart `cnnzoo serve`.",
    "prediction": "Prediction", "seen": "What the network sees", "gallery": "Test images",
    "gallery.note": "{dataset}, a few per class: click one to classify it.", "gallery.none": "No test images ({why}).",
    "seen.note": "{size}, {colour}; {how}.", "seen.grey": "grey", "seen.colour": "colour",
    "seen.inverted": "inverted: your dark-on-light image became light-on-dark, like {dataset}",
    "seen.not_inverted": "not inverted",
    "maps": "Feature maps, layer by layer",
    "maps.note": "Each small image is one map (channel) of a layer's output, after its activation; vectors (fully connected layers) are shown as grids of cells, one cell per unit. Click any pixel to see what that neuron sees.",
    "maps.empty": "Draw, pick a test image or upload one to see every layer's maps.",
    "maps.range": "range {min} … {max}", "maps.first": " (first {n} shown)",
    "maps.map_title": "{layer}, map {m}", "maps.units_title": "{layer}: {n} units, row by row",
    "legend.signed": "signed (tanh):", "legend.signed_scale": "−max · 0 · +max",
    "legend.positive": "non-negative (ReLU):", "legend.positive_scale": "0 · max",
    "footer.model": "model {model}", "footer.input": "input {size}", "footer.dataset": "trained on {dataset}",
    "footer.epoch": "epoch {epoch}", "footer.test": "test accuracy {acc} %", "footer.untrained": "untrained",
    "neuron": "What a neuron sees",
    "neuron.hint": "Click a pixel of any feature map (or focus a map and press Enter; arrow keys move).",
    "neuron.title": "{layer}, map {channel}, pixel (y {y}, x {x}) = {value}",
    "neuron.unit": "{layer}, unit {channel} = {value}",
    "rf": "Theoretical receptive field", "rf.note": "{h}×{w} input pixels (jump {j}): rows {top}–{bottom}, columns {left}–{right} of the input",
    "rf.clipped": " (the rest is padding)",
    "erf": "Effective receptive field: |∂ neuron / ∂ input|",
    "erf.pre": "The neuron is 0 (its ReLU is off): no input pixel changes it. Shown: the gradient of its sum before the activation.",
    "erf.note": "{n} input pixels change this neuron; black ones do not.",
    "dot": "The multiply-add", "dot.kernel": "kernel", "dot.patch": "input patch", "dot.map": "input map {i}",
    "dot.sum": "sum", "dot.bias": "bias", "dot.rest": "+ the other {n} input maps: {sum}",
    "dot.padding": "grey: padding (zeros outside the image)",
    "dot.table": "Table I: map {channel} of {layer} reads maps {maps} of the layer before (LeCun et al. 1998).",
    "dot.none": "No multiply-add to show for this layer ({type}).",
    "dot.linear": "A fully connected unit: each of its {n} inputs x times its weight w, summed, plus the bias: Σ w·x + b.",
    "dot.weights": "w (weights)", "dot.values": "x (inputs)", "dot.rest_inputs": "+ the other {n} products w·x: {sum}",
    "slide": "Slide the kernel", "slide.play": "Play", "slide.pause": "Pause",
    "slide.note": "The kernel slides over the input; the map fills pixel by pixel.",
    // train
    "train.title": "Train", "train.start": "Start", "train.stop": "Stop", "train.use": "Use this model",
    "train.model": "model", "train.dataset": "dataset", "train.epochs": "epochs", "train.limit": "images (limit)",
    "train.lr": "learning rate", "train.recipe": "recipe", "train.run": "run", "train.status": "status",
    "train.epoch": "epoch", "train.speed": "speed", "train.eta": "time left", "train.curves": "Loss and accuracy",
    "train.replay": "Replay", "train.filters": "conv1's filters", "train.maps": "One test image, layer by layer",
    "train.confusion": "Confusion matrix", "train.wrong": "Test images it gets wrong",
    "train.limit_all": "all", "train.lr_recipe": "recipe's",
    "train.curves_note": "Thin lines: the training batches so far (running mean within each epoch). Dots: the held-out validation images (10% of the training set) after each epoch. Loss on the left, accuracy on the right.",
    "train.panel": "{what} (train: line, validation: dots)", "train.loss": "loss", "train.accuracy": "accuracy",
    "train.slider": "epoch {n}", "train.initial": " (initial weights)",
    "train.filters_legend": "Grey is 0, light positive, dark negative weights.",
    "train.filters_note": "{n} kernels of {size}. Grey is 0, light positive, dark negative weights; each kernel scaled on its own.",
    "train.no_conv": "This model has no convolution.", "train.input_row": "input ({label})",
    "train.true_predicted": "true \\ predicted",
    "train.sample_note": "{pct}% right on the same {n} test images every epoch.",
    "train.is": "is {cls}", "train.truly": "truly: {cls}",
    "train.per_second": "{n} images/s", "train.seconds": "{n} s",
    "train.stopped": "Stopped. The last finished epoch's checkpoint is kept: {cmd} continues it.",
    "train.used": "The predict page now serves {model} from {source}. ", "train.draw_link": "Draw something",
    "train.run_option": "{id} ({model}, {n} epochs)",
    "train.no_dataset": "No dataset is on this machine: download one with `cnnzoo train` first.",
    "status.idle": "idle", "status.running": "running", "status.stopping": "stopping", "status.finished": "finished",
    "status.stopped": "stopped", "status.failed": "failed", "status.replay": "replay",
    "recipe.default": "default", "recipe.fast": "fast", "recipe.paper": "paper",
    // what screen readers say (alt texts, aria-labels)
    "aria.pad": "drawing pad",
    "alt.input": "the network's input",
    "alt.gradient": "gradient of the neuron with respect to the input",
    "aria.slide_map": "the map filled so far",
    "aria.slide": "kernel position",
    "aria.curves": "training curves",
    "aria.runs": "runs with snapshots",
    "aria.epoch": "epoch",
    "aria.filters": "first-layer filters",
    "alt.maps": "{layer}'s feature maps",
    "aria.diagram": "layer diagram of {model}",
  },
  zh: {
    "nav.predict": "预测", "nav.explore": "探索网络结构", "nav.train": "训练", "nav.api": "API 文档",
    "brand.predict": "看卷积网络如何看", "brand.explore": "逐层分析", "brand.train": "看卷积网络学习",
    "lang": "语言",
    "form.model": "模型", "form.input": "输入（C×H×W）", "form.analyze": "分析",
    "totals": "总计", "diagram": "结构图", "layers": "各层", "explanation": "计算过程",
    "diagram.note": "— 每个方块是一层的输出：高度 ∝ H×W（对数），厚度 ∝ 通道数（对数），如 LeNet-5 的图 2",
    "explain.hint": "点击表中任一数字（或用 Tab 键选中）查看它的计算过程；参与计算的层会高亮。",
    "explain.more": "另外 {n} 步",
    "col.layer": "层", "col.type": "类型", "col.kernel": "核", "total": "总计", "in": "输入",
    "tot.trainable": "可训练参数", "at": "输入", "source": "来源", "loading": "…",
    "desc.model": "{family}。论文输入 {input}。{cite}",
    "conventions": "MACs = 与权重相乘再累加的次数（卷积层、全连接层；LeNet 的下采样层和 RBF 层）；FLOPs = 2×MACs + 偏置加法 + 激活/池化/归一化/相加（规则见 docs/analyzer.md）；连接数按 LeCun 的规则（偏置算一个输入）；均为每张图像。",
    "draw": "手写", "clear": "清除", "brush": "笔刷", "invert": "反色", "invert.auto": "自动",
    "invert.yes": "总是", "invert.no": "从不", "fit": "按笔画居中", "upload": "上传图片…",
    "hint.draw": "用鼠标、笔或手指画：白底黑字。网络是在 {dataset} 上训练的；如果它的图像是深底亮字，你画的图会被反色以便一致（见“网络看到的输入”）。",
    "hint.dataset": "它的数据集",
    "predict.empty": "画点什么…",
    "banner.untrained": "没有找到训练好的检查点：这是一个随机权重、未经训练的 {model}，它的猜测没有意义。用 `cnnzoo train` 训练一个，再重启 `cnnzoo serve`。",
    "prediction": "预测结果", "seen": "网络看到的输入", "gallery": "测试图片",
    "gallery.note": "{dataset}，每类几张：点一张让网络分类。", "gallery.none": "没有测试图片（{why}）。",
    "seen.note": "{size}，{colour}；{how}。", "seen.grey": "灰度", "seen.colour": "彩色",
    "seen.inverted": "已反色：你的浅底深色图像变成了深底亮色，和 {dataset} 一致",
    "seen.not_inverted": "未反色",
    "maps": "逐层特征图",
    "maps.note": "每个小图是一层输出的一个特征图（通道），已经过激活函数；全连接层的向量画成格子，每格一个单元。点击任一像素，看这个神经元看到什么。",
    "maps.empty": "手写、选一张测试图片或上传一张图片，查看每一层的特征图。",
    "maps.range": "范围 {min} … {max}", "maps.first": "（只显示前 {n} 个）",
    "maps.map_title": "{layer}，第 {m} 个特征图", "maps.units_title": "{layer}：{n} 个单元，逐行排列",
    "legend.signed": "有正负（tanh）：", "legend.signed_scale": "−最大 · 0 · +最大",
    "legend.positive": "非负（ReLU）：", "legend.positive_scale": "0 · 最大",
    "footer.model": "模型 {model}", "footer.input": "输入 {size}", "footer.dataset": "训练数据 {dataset}",
    "footer.epoch": "第 {epoch} 轮", "footer.test": "测试准确率 {acc} %", "footer.untrained": "未训练",
    "neuron": "一个神经元看到什么",
    "neuron.hint": "点击任一特征图的一个像素（或选中特征图后按回车；方向键移动）。",
    "neuron.title": "{layer}，第 {channel} 个特征图，像素（y {y}，x {x}）= {value}",
    "neuron.unit": "{layer}，第 {channel} 个单元 = {value}",
    "rf": "理论感受野", "rf.note": "输入中 {h}×{w} 个像素（跳距 {j}）：输入的第 {top}–{bottom} 行、第 {left}–{right} 列",
    "rf.clipped": "（其余是填充）",
    "erf": "有效感受野：|∂ 神经元 / ∂ 输入|",
    "erf.pre": "该神经元为 0（ReLU 未激活）：改变任何输入像素都不影响它。图中是激活前加权和的梯度。",
    "erf.note": "有 {n} 个输入像素影响这个神经元；黑色的不影响。",
    "dot": "乘加运算", "dot.kernel": "卷积核", "dot.patch": "输入区域", "dot.map": "输入特征图 {i}",
    "dot.sum": "和", "dot.bias": "偏置", "dot.rest": "+ 其余 {n} 个输入特征图：{sum}",
    "dot.padding": "灰色：填充（图像外的零）",
    "dot.table": "表 I：{layer} 的第 {channel} 个特征图读取上一层的第 {maps} 个特征图（LeCun 等 1998）。",
    "dot.none": "这一层（{type}）没有乘加运算可显示。",
    "dot.linear": "全连接单元：{n} 个输入 x 各乘以自己的权重 w，求和，再加偏置：Σ w·x + b。",
    "dot.weights": "w（权重）", "dot.values": "x（输入）", "dot.rest_inputs": "+ 其余 {n} 个乘积 w·x：{sum}",
    "slide": "滑动卷积核", "slide.play": "播放", "slide.pause": "暂停",
    "slide.note": "卷积核在输入上滑动，特征图逐个像素填满。",
    "train.title": "训练", "train.start": "开始", "train.stop": "停止", "train.use": "使用这个模型",
    "train.model": "模型", "train.dataset": "数据集", "train.epochs": "训练轮数", "train.limit": "图片数（上限）",
    "train.lr": "学习率", "train.recipe": "训练方案", "train.run": "运行", "train.status": "状态",
    "train.epoch": "轮次", "train.speed": "速度", "train.eta": "剩余时间", "train.curves": "损失与准确率",
    "train.replay": "回放", "train.filters": "conv1 的卷积核（第一个卷积层）", "train.maps": "一张测试图片，逐层",
    "train.confusion": "混淆矩阵", "train.wrong": "分错的测试图片",
    "train.limit_all": "全部", "train.lr_recipe": "按训练方案",
    "train.curves_note": "细线：到目前为止的训练批次（每轮内的滑动平均）。圆点：每轮结束后在留出的验证图片（训练集的 10%）上的结果。左边是损失，右边是准确率。",
    "train.panel": "{what}（训练：线，验证：点）", "train.loss": "损失", "train.accuracy": "准确率",
    "train.slider": "第 {n} 轮", "train.initial": "（初始权重）",
    "train.filters_legend": "灰色为 0，浅色为正权重，深色为负权重。",
    "train.filters_note": "{n} 个 {size} 的卷积核。灰色为 0，浅色为正权重，深色为负权重；每个卷积核单独缩放。",
    "train.no_conv": "这个模型没有卷积层。", "train.input_row": "输入（{label}）",
    "train.true_predicted": "真实 \\ 预测",
    "train.sample_note": "每轮都用同样的 {n} 张测试图片：{pct}% 分对。",
    "train.is": "实为 {cls}", "train.truly": "真实类别：{cls}",
    "train.per_second": "{n} 张/秒", "train.seconds": "{n} 秒",
    "train.stopped": "已停止。最后完成的一轮的检查点已保留：{cmd} 可以继续训练。",
    "train.used": "预测页面现在使用 {source} 中的 {model}。", "train.draw_link": "去画一个",
    "train.run_option": "{id}（{model}，{n} 轮）",
    "train.no_dataset": "这台机器上没有数据集：先用 `cnnzoo train` 下载一个。",
    "status.idle": "空闲", "status.running": "训练中", "status.stopping": "正在停止", "status.finished": "已完成",
    "status.stopped": "已停止", "status.failed": "失败", "status.replay": "回放",
    "recipe.default": "默认", "recipe.fast": "快速", "recipe.paper": "论文",
    "aria.pad": "手写板",
    "alt.input": "网络的输入",
    "alt.gradient": "神经元对输入的梯度",
    "aria.slide_map": "目前已填好的特征图",
    "aria.slide": "卷积核的位置",
    "aria.curves": "训练曲线",
    "aria.runs": "有快照的运行",
    "aria.epoch": "轮次",
    "aria.filters": "第一层的卷积核",
    "alt.maps": "{layer} 的特征图",
    "aria.diagram": "{model} 的结构图",
  },
};

// Chinese names for what the server sends in English: class names (Fashion-MNIST's are d2l-zh's) and model
// families. dataName("class", "Bag") -> "包" in 中文, "Bag" in English; unknown names stay as they are.
const DATA_ZH = {
  class: {
    "T-shirt/top": "T恤", "Trouser": "裤子", "Pullover": "套衫", "Dress": "裙子", "Coat": "外套",
    "Sandal": "凉鞋", "Shirt": "衬衫", "Sneaker": "运动鞋", "Bag": "包", "Ankle boot": "靴子",
    "0 - zero": "0 - 零", "1 - one": "1 - 一", "2 - two": "2 - 二", "3 - three": "3 - 三", "4 - four": "4 - 四",
    "5 - five": "5 - 五", "6 - six": "6 - 六", "7 - seven": "7 - 七", "8 - eight": "8 - 八", "9 - nine": "9 - 九",
    "airplane": "飞机", "automobile": "汽车", "bird": "鸟", "cat": "猫", "deer": "鹿", "dog": "狗", "frog": "青蛙",
    "horse": "马", "ship": "船", "truck": "卡车",
  },
  family: {
    "lenet": "LeNet 系列：卷积层与池化层交替，再接全连接层，识别手写数字和小图像",
    "alexnet": "AlexNet：2012 年赢得 ImageNet 比赛的网络，用 ReLU、丢弃法和大卷积核",
    "vgg": "VGG：只堆叠 3×3 卷积来加深的网络",
    "resnet": "ResNet：残差网络，快捷连接把块的输入加到块的输出上",
    "plain": "普通网络：与 ResNet 层数相同，但没有快捷连接，用来对照",
    "1x1": "1×1 卷积：先降低通道数，再做大卷积，乘加运算少得多",
  },
};

function dataName(kind, name) {
  return (LANG === "zh" && DATA_ZH[kind] && DATA_ZH[kind][name]) || name;
}

// The Build page (build.html, build.js).
Object.assign(STRINGS.en, {
  "nav.build": "Build", "brand.build": "build your own CNN",
  "build.start": "Start from", "build.load": "Load", "build.input": "Input (C×H×W)", "build.train": "Train this",
  "build.net": "Layer string",
  "build.grammar": "32C3p1s2 convolution (32 maps, 3×3 kernel; p padding, s stride, d dilation, g groups) · MP2, AP2 pooling · 64N fully connected · BN batch norm · D0.5 dropout · R64 residual block · GAP global pooling · 64C3*2 twice",
  "build.controls": "Layers, one row per token", "build.add": "Add after the selected row:",
  "build.group.empty": "empty", "build.group.seed": "the seeds' nets", "build.group.zoo": "the zoo",
  "build.empty": "an input and 10 outputs", "build.seed.seed003": "seed 003: Keras CNN (4×4 kernels)",
  "build.seed.seed004": "seed 004: Keras CNN (3×3 kernels)", "build.seed.seed004-lenet": "seed 004: LeNet-5's layers",
  "build.collapse": "{layer} collapses: its input is only {n} pixels wide, and the output-size rule gives",
  "build.smallest": "The smallest input that works: {size}.", "build.none": "No input up to 1024×1024 works.",
  "build.nochange": "The net you started from.", "build.params": "params",
  "build.output": "{layer}'s output {shapes}", "build.because": "because", "build.count": "{a}→{b} tokens",
  "build.fixfirst": "Fix the layer string first: the controls follow it.",
  "build.kind.conv": "convolution", "build.kind.pool": "pooling", "build.kind.gpool": "global pooling",
  "build.kind.fc": "fully connected", "build.kind.bn": "batch norm", "build.kind.drop": "dropout",
  "build.kind.act": "activation", "build.kind.res": "residual block",
  "build.f.out": "channels", "build.f.kernel": "kernel", "build.f.stride": "stride", "build.f.padding": "padding",
  "build.f.dilation": "dilation", "build.f.groups": "groups", "build.f.p": "p",
  "build.max": "max", "build.avg": "average", "build.shortcut.B": "1×1 conv shortcut (B)",
  "build.shortcut.A": "zero-padding shortcut (A)", "build.up": "move up", "build.down": "move down",
  "build.remove": "remove", "build.stale": "Showing the last net that worked, not the string above.",
});
Object.assign(STRINGS.zh, {
  "nav.build": "搭建", "brand.build": "搭建你自己的 CNN",
  "build.start": "起点", "build.load": "载入", "build.input": "输入（C×H×W）", "build.train": "训练它",
  "build.net": "层字符串",
  "build.grammar": "32C3p1s2 卷积层（32 个 3×3 卷积核，p 填充，s 步幅，d 空洞，g 分组）· MP2、AP2 池化层 · 64N 全连接层 · BN 批归一化 · D0.5 丢弃 · R64 残差块 · GAP 全局池化 · 64C3*2 重复两次",
  "build.controls": "各层（每个记号一行）", "build.add": "在选中的行之后添加：",
  "build.group.empty": "空网络", "build.group.seed": "种子文本中的网络", "build.group.zoo": "模型库",
  "build.empty": "一个输入和 10 个输出", "build.seed.seed003": "种子 003：Keras 卷积网络（4×4 卷积核）",
  "build.seed.seed004": "种子 004：Keras 卷积网络（3×3 卷积核）", "build.seed.seed004-lenet": "种子 004：LeNet-5 的各层",
  "build.collapse": "{layer} 的特征图坍缩：它的输入只有 {n} 像素宽，输出尺寸公式给出",
  "build.smallest": "可用的最小输入：{size}。", "build.none": "1024×1024 以内没有可用的输入。",
  "build.nochange": "这是起点网络。", "build.params": "参数",
  "build.output": "{layer} 的输出 {shapes}", "build.because": "因为", "build.count": "记号数 {a}→{b}",
  "build.fixfirst": "请先修正层字符串：控件跟随它。",
  "build.kind.conv": "卷积层", "build.kind.pool": "池化层", "build.kind.gpool": "全局池化",
  "build.kind.fc": "全连接层", "build.kind.bn": "批归一化", "build.kind.drop": "丢弃",
  "build.kind.act": "激活函数", "build.kind.res": "残差块",
  "build.f.out": "通道数", "build.f.kernel": "卷积核", "build.f.stride": "步幅", "build.f.padding": "填充",
  "build.f.dilation": "空洞", "build.f.groups": "分组", "build.f.p": "概率",
  "build.max": "最大", "build.avg": "平均", "build.shortcut.B": "1×1 卷积捷径（B）",
  "build.shortcut.A": "补零捷径（A）", "build.up": "上移", "build.down": "下移", "build.remove": "删除",
  "build.stale": "显示的是上一个可用的网络，不是上面的层字符串。",
});

const LANG_KEY = "cnnzoo.lang";

function currentLang() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked === "en" || asked === "zh") {
    try { localStorage.setItem(LANG_KEY, asked); } catch (e) { /* private mode: the URL still says it */ }
    return asked;
  }
  let kept = null;
  try { kept = localStorage.getItem(LANG_KEY); } catch (e) { kept = null; }
  return kept === "zh" ? "zh" : "en";
}

let LANG = currentLang();

// t("rf.note", {h: 5}) -> the string in the current language, {names} filled in; unknown keys show as is.
function t(key, vars) {
  const text = (STRINGS[LANG] && STRINGS[LANG][key]) || STRINGS.en[key] || key;
  return text.replace(/\{(\w+)\}/g, (m, k) => (vars && k in vars ? String(vars[k]) : m));
}

function translatePage(root) {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  for (const node of (root || document).querySelectorAll("[data-i18n]")) {
    const text = t(node.dataset.i18n);
    const first = [...node.childNodes].find((c) => c.nodeType === Node.TEXT_NODE && c.textContent.trim());
    if (first) first.textContent = first.textContent.replace(first.textContent.trim(), text);
    else if (!node.children.length) node.textContent = text;
    else node.prepend(document.createTextNode(text + " "));
  }
  for (const node of (root || document).querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
  for (const node of (root || document).querySelectorAll("[data-i18n-alt]")) node.alt = t(node.dataset.i18nAlt);
  for (const node of (root || document).querySelectorAll("[data-i18n-aria]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nAria));
  }
  for (const node of (root || document).querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  for (const b of document.querySelectorAll(".lang-switch button")) {
    b.setAttribute("aria-pressed", b.dataset.lang === LANG ? "true" : "false");
  }
}

function setLang(lang) {
  if (lang !== "en" && lang !== "zh") return;
  LANG = lang;
  try { localStorage.setItem(LANG_KEY, lang); } catch (e) { /* not remembered, still switched */ }
  const url = new URL(location.href);
  if (url.searchParams.has("lang")) {
    url.searchParams.set("lang", lang);
    history.replaceState(null, "", url);
  }
  translatePage();
  document.dispatchEvent(new CustomEvent("langchange", { detail: { lang } }));
}

// The switch: two real buttons in the header (Tab + Enter/Space work), on every page.
function addLangSwitch() {
  const header = document.querySelector("header.top");
  if (!header || header.querySelector(".lang-switch")) return;
  const box = document.createElement("div");
  box.className = "lang-switch";
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", "Language / 语言");
  for (const [lang, label] of [["en", "English"], ["zh", "中文"]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary";
    b.dataset.lang = lang;
    b.setAttribute("data-testid", `lang-${lang}`);
    b.textContent = label;
    b.addEventListener("click", () => setLang(lang));
    box.append(b);
  }
  header.append(box);
}

addLangSwitch();
translatePage();
