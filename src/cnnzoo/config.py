"""TrainConfig: every training option, its default, its range, and why — in one place.

The same rules check the command line (``cnnzoo train``'s argparse types are made from them), the Python API
(``fit(model, data, **options)``) and a saved run (``--resume`` re-reads ``config.json``), so a bad value gets
the same one-line error wherever it comes from. No torch here: ``cnnzoo train --help`` must stay fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from .options import OptionError, Rule, check, option, validate

__all__ = [
    "TrainConfig",
    "OPTIMIZERS",
    "MUON_LAYERS",
    "SCHEDULES",
    "LOSSES",
    "NORMALIZATIONS",
    "PROGRESS",
    "FREEZE",
    "validate_config",
    "config_from",
]

# sdlm: the 1998 paper's stochastic diagonal Levenberg-Marquardt (cnnzoo.train.sdlm)
# muon: Muon for the hidden layers' weights, Nesterov SGD for the rest (cnnzoo.train.muon)
OPTIMIZERS = ("sgd", "adam", "adamw", "muon", "sdlm")
# which hidden weights Muon takes: all of them, or the convolutions' only (the fully connected ones then go to
# SGD: Newton-Schulz on VGG's 4096×4096 matrix is ~2 TFLOP a step, 14× the rest of the step at 32×32)
MUON_LAYERS = ("hidden", "conv")
# lenet1998: the paper's η per pass (§III.C): 0.0005 ×2, 0.0002 ×3, 0.0001 ×3, 0.00005 ×4, then 0.00001
SCHEDULES = ("constant", "step", "milestones", "cosine", "onecycle", "linear", "lenet1998")
# dataset: the training set's mean/std; lenet1998: the paper's §II.A scaling, background -0.1, ink 1.175;
# pretrained: the pretrained weights' own (ImageNet's), which their features were learnt on
NORMALIZATIONS = ("dataset", "lenet1998", "pretrained")
FREEZE = ("features",)  # everything but the classifier
LOSSES = ("ce", "lenet5")
PROGRESS = ("rich", "plain", "quiet")
_MAX_EPOCHS = 10_000  # beyond this a per-step schedule's lr is ~0 and the run would outlive its user
_MAX_BATCH = 65_536  # a global batch of 64k LeNet inputs is 256 MB: more is a typo, not a plan
_MAX_SEED = 2**31 - 1  # seeds are mixed into 64-bit generator seeds (data.epoch_generator): no overflow


@dataclass
class TrainConfig:
    """Everything that defines a training run. ``fit(model, data, **options)`` accepts any field."""

    epochs: int = option(10, Rule(int, 1, _MAX_EPOCHS), help="passes over the training set")
    # the global batch: all processes together under DDP
    batch_size: int = option(256, Rule(int, 1, _MAX_BATCH), help="the global batch (all processes together)")
    # the peak LR for ``batch_size`` (it does not change with the number of processes)
    lr: float = option(0.05, Rule(float, 0, 10, lo_open=True), help="peak learning rate for this batch size")
    optimizer: str = option(
        "sgd",
        Rule(str, choices=OPTIMIZERS),
        help="sdlm: the 1998 paper's; muon: Muon for the hidden layers, SGD for the rest",
    )
    # 1 would never forget a gradient
    momentum: float = option(0.9, Rule(float, 0, 1, hi_open=True), help="SGD's (and Muon's) momentum")
    # --optimizer muon: the hidden layers' learning rate (lr is then the output layer's and the biases'). An
    # orthogonalised step has a spectral norm of about 1 whatever the gradient's size, so its scale is its own:
    # 0.02 is Jordan's default; lenet5_modern's recipe sets 0.01, the best of 0.005/0.01/0.02/0.05 there
    muon_lr: float = option(
        0.02, Rule(float, 0, 10, lo_open=True), help="--optimizer muon: the hidden layers' learning rate"
    )
    # --optimizer muon: which weights Muon takes, every hidden layer's or the convolutions' (MUON_LAYERS)
    muon_layers: str = option(
        "hidden",
        Rule(str, choices=MUON_LAYERS),
        help="--optimizer muon: every hidden layer's weights or the convolutions' only",
    )
    nesterov: bool = option(True, Rule(bool), help="Nesterov momentum")
    # Adam/AdamW's (beta1, beta2); None: torch's (0.9, 0.999). Shorter memories, e.g. (0.7, 0.9) as in
    # train_mnist_fast, follow a fast one-cycle schedule more closely. Checked in validate_config (a pair).
    betas: tuple[float, float] | None = option(
        None, Rule(float, 0, 1, hi_open=True), help="Adam/AdamW's betas", default_text="0.9 0.999", nargs=2
    )
    weight_decay: float = option(
        5e-4, Rule(float, 0, 1), help="on conv/linear weights (every parameter with --decay-all)"
    )
    # weight decay on every parameter, biases and norm scales too: what He et al. 2015 did (and the
    # experiments reproduce); off, the modern default, 1-D parameters are not pulled towards zero
    decay_all: bool = option(
        False, Rule(bool), help="weight decay on biases and norm scales too (He et al. 2015)"
    )
    schedule: str = option(
        "onecycle", Rule(str, choices=SCHEDULES), help="the learning-rate schedule, stepped per batch"
    )
    # linear warmup (when 0: onecycle 25% of the run, linear 10%); at most the whole run
    warmup_epochs: float = option(
        0.0, Rule(float, 0, _MAX_EPOCHS), help="linear warmup (0: onecycle 25% of the run, linear 10%)"
    )
    # "step" schedule: × gamma every this many epochs (0: a third of the run)
    step_every_epochs: int = option(
        0, Rule(int, 0, _MAX_EPOCHS), help="step schedule: × gamma every N epochs (0: a third of the run)"
    )
    # "milestones" schedule: × gamma at these fractions of the run (He et al. 2015: 0.5 and 0.75)
    milestones: tuple[float, ...] = option(
        (0.5, 0.75),
        Rule(float, 0, 1, lo_open=True, hi_open=True),
        help="× gamma at these fractions of the run",
        nargs="+",
    )
    gamma: float = option(
        0.1, Rule(float, 0, 1, lo_open=True), help="step and milestones schedules: the factor"
    )
    # 1 would make every target uniform: nothing left to learn
    label_smoothing: float = option(
        0.0, Rule(float, 0, 1, hi_open=True), help="cross-entropy's label smoothing"
    )
    # "ce" (cross-entropy on logits) | "lenet5" (the 1998 paper's MAP criterion, eq. 9)
    loss: str = option("ce", Rule(str, choices=LOSSES), help="lenet5: the 1998 paper's MAP criterion")
    # the mean/std the model's card gets, hence what preprocess() uses in training, prediction and the web app
    normalization: str = option(
        "dataset",
        Rule(str, choices=NORMALIZATIONS),
        help="lenet1998: the paper's inputs, -0.1 (background) to 1.175; pretrained: the weights' own",
    )
    # random shifts of up to ±crop_padding pixels; 0 = none; 64 already shifts a 32×32 image out of view
    crop_padding: int = option(2, Rule(int, 0, 64), help="random shifts of up to ±N pixels (0: none)")
    # None: the dataset's facts decide
    hflip: bool | None = option(
        None,
        Rule(bool, optional=True),
        help="random mirroring",
        default_text="the dataset decides: not for digits",
    )
    # predictions average the logits of the image and its mirror image (cnnzoo.tta), where training mirrors
    # (hflip): a second forward pass for +0.3-0.6 points (lenet5_modern on Fashion-MNIST, docs/training.md);
    # without mirroring in training it would cost points, so then it is off
    test_flip: bool = option(
        False, Rule(bool), help="predict with the mirror image too (mean logits), where training mirrors"
    )
    # random resized crops (as the streamed folders have: 25..100% of the area, aspect 3/4..4/3, resized to
    # the input size) instead of shifts; None: for image folders (photos), not for the digit and CIFAR sets
    resized_crop: bool | None = option(
        None,
        Rule(bool, optional=True),
        help="random resized crops instead of shifts",
        default_text="for image folders",
    )
    # fine-tuning (cnnzoo.train.finetune): "features" trains only the classifier; frozen parameters get no
    # gradient and frozen batch norms keep their statistics
    freeze: str | None = option(
        None,
        Rule(str, choices=FREEZE, optional=True),
        help="features: train only the classifier",
        default_text="nothing frozen",
    )
    # freeze every parameter up to and including this module ("layer3"): the later layers train
    freeze_until: str | None = option(
        None,
        Rule(str, optional=True),
        help="freeze up to and including this module, e.g. layer3",
        default_text="nothing frozen",
    )
    # the learning rate of the unfrozen layers before the classifier (the pretrained part); None: lr
    lr_backbone: float | None = option(
        None,
        Rule(float, 0, 10, lo_open=True, optional=True),
        help="learning rate of the unfrozen layers before the classifier",
        default_text="--lr",
    )
    # the last fraction of a seeded shuffle of the training set (Keras's name)
    validation_split: float = option(
        0.1, Rule(float, 0, 1, hi_open=True), help="fraction of the training set held out"
    )
    # use at most this many training and test images (quick runs)
    limit: int | None = option(
        None,
        Rule(int, 1, 10**9, optional=True),
        help="use at most N training and N test images (quick runs)",
        default_text="all",
    )
    # also evaluate the test set after every epoch (test_loss, test_accuracy)
    test_every_epoch: bool = option(False, Rule(bool), help="also evaluate the test set after every epoch")
    seed: int = option(0, Rule(int, 0, _MAX_SEED), help="makes the run repeatable")
    # checked by resolve_device
    device: str = option("auto", Rule(str), help="auto, cpu, cuda, cuda:N or mps")
    # None: on (CUDA and CPU: measured 1.17-1.33x for LeNet-5)
    channels_last: bool | None = option(
        None,
        Rule(bool, optional=True),
        help="channels-last memory format",
        default_text="on: faster on CPUs and GPUs, measured",
    )
    # bf16 autocast; None: on for CUDA and CPUs with bf16 units (AMX/AVX512-BF16)
    bf16: bool | None = option(
        None,
        Rule(bool, optional=True),
        help="bf16 autocast",
        default_text="on for CUDA and CPUs with bf16 units, AMX/AVX512-BF16",
    )
    eval_batch_size: int = option(1024, Rule(int, 1, _MAX_BATCH), help="images per evaluation batch")
    # run directory; None writes nothing (the command line always writes one)
    out: str | None = option(
        None, Rule(str, optional=True), help="run directory", default_text="runs/MODEL-TIMESTAMP"
    )
    resume: bool = option(False, Rule(bool), help="continue the run in --out from its last checkpoint")
    # rich | plain | quiet; None: rich on a terminal, plain otherwise; in Jupyter None or rich: a live line
    progress: str | None = option(
        None,
        Rule(str, choices=PROGRESS, optional=True),
        help="how progress is shown (--quiet: quiet)",
        default_text="rich on a terminal, plain otherwise",
    )
    # torch threads per process; None: as torch has them (torchrun: 1 per process)
    threads: int | None = option(
        None,
        Rule(int, 1, 1024, optional=True),
        help="torch intra-op threads per process",
        default_text="as torch has them",
    )
    # use the cores other processes leave free, re-checked every epoch (cnnzoo.threads); `cnnzoo train` turns
    # it on unless --threads is given. Off in the API: bit-exact repeatability needs a fixed thread count.
    adapt_threads: bool = option(
        False,
        Rule(bool),
        help="use the cores other processes leave free, re-checked every epoch",
        default_text="on unless --threads is given",
    )
    # per-epoch snapshots in out/snapshots/ (conv1's filters, one test image's maps, confusion, mistakes) and
    # a progress line every few steps: what the web app's Train page streams and replays. Off by default: each
    # epoch then costs one more forward pass over up to 2,000 test images.
    snapshots: bool = option(
        False,
        Rule(bool),
        help="per-epoch snapshots in DIR/snapshots/ (filters, feature maps, mistakes): `cnnzoo serve` replays them",
    )
    # image folders and fit's Datasets: read batches in worker processes instead of loading it all into memory.
    # None: only when it would take more than a quarter of the available memory (data.stream, train.mapstyle)
    stream: bool | None = option(
        None,
        Rule(bool, optional=True),
        help="image folders (and fit's Datasets): decode batches in worker processes",
        default_text="when the data is too large for memory",
    )
    # a streamed file that cannot be read (corrupt, truncated, empty) is an error naming it; off: skipped
    # with one warning line and counted in result.json's skipped_files
    strict: bool = option(
        False, Rule(bool), help="an unreadable image is an error (off: skipped with a warning)"
    )
    # decoding worker processes per training process when streaming; None: its share of the cores, at most 8
    # (0 decodes in the training process itself)
    workers: int | None = option(
        None,
        Rule(int, 0, 256, optional=True),
        help="decoding processes per training process when streaming",
        default_text="its share of the cores, at most 8",
    )


def _fractions(value, within) -> tuple[float, ...] | None:
    """``value`` as a tuple of floats when it is a list/tuple of finite real numbers each ``within(x)``;
    None otherwise (the tuple-valued options, which a Rule does not cover)."""
    if not isinstance(value, (tuple, list)):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return tuple(float(v) for v in value) if all(within(v) for v in value) else None


def validate_config(cfg: TrainConfig, source: str = "") -> TrainConfig:
    """Every field's rule, then the rules between fields. Raises :class:`OptionError` (one line)."""
    validate(cfg, source)
    where = f"{source}: " if source else ""
    ms = _fractions(cfg.milestones, lambda m: 0 < m < 1)
    if ms is None:
        raise OptionError(
            f"{where}milestones must be fractions of the run in (0, 1), got {cfg.milestones!r}"[:200]
        )
    cfg.milestones = ms
    if cfg.betas is not None:
        # each in [0, 1): a beta of 1 would never forget its first gradient (Adam's bias correction divides
        # by 1 - beta**t = 0)
        bs = _fractions(cfg.betas, lambda b: 0 <= b < 1)
        if bs is None or len(bs) != 2:
            raise OptionError(f"{where}betas must be two numbers in [0, 1), got {cfg.betas!r}"[:200])
        cfg.betas = bs
    if cfg.warmup_epochs > cfg.epochs:
        raise OptionError(
            f"{where}warmup_epochs ({cfg.warmup_epochs:g}) is longer than the run ({cfg.epochs})"
        )
    if cfg.freeze is not None and cfg.freeze_until is not None:
        raise OptionError(f"{where}freeze and freeze_until exclude each other (give one)")
    if cfg.resume and not cfg.out:
        raise OptionError(f"{where}resume needs the run directory (--out DIR)")
    return cfg


def config_from(options: dict, source: str = "", base: TrainConfig | None = None) -> TrainConfig:
    """A validated TrainConfig from a mapping (a saved config.json, or ``fit``'s keyword arguments); keys
    that are not options are refused, except the run's own records that config.json also holds."""
    if not isinstance(options, dict):
        where = f"{source}: " if source else ""
        raise OptionError(f"{where}expected an object of training options, got {type(options).__name__}")
    names = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(options) - names)
    if unknown and not source:  # a misspelt keyword argument, as Python itself would report it
        raise TypeError(f"fit() got unexpected training option(s): {', '.join(unknown)[:150]}")
    for key, value in options.items():
        if key in names:
            check(TrainConfig, key, value, source)
    cfg = (
        TrainConfig(**{f.name: getattr(base, f.name) for f in fields(TrainConfig)}) if base else TrainConfig()
    )
    for key, value in options.items():
        if key in names:
            setattr(cfg, key, value)
    return validate_config(cfg, source)
