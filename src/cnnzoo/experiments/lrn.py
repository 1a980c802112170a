"""The VGG paper (Simonyan & Zisserman 2014), Table 3: local response normalisation brings no gain.

VGG-A (``vgg11``) and VGG-A-LRN (``vgg11_lrn``: AlexNet's LRN after the first conv) are the same net but
for the LRN layer. The paper: top-1 error 29.6% (A) vs 29.7% (A-LRN) on ImageNet, so the authors dropped
LRN from B-E. Here both are scaled to Fashion-MNIST (padded to 32×32; ``width`` shrinks the conv channels,
``fc_features`` the FC layers) and trained alike with several seeds; the claim holds when A-LRN's test
error is not lower than A's by more than the seeds' noise (two standard errors of the difference).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..plots import new_figure, save_figure
from .report import Report, begin, finish, pct
from .stats import chance_error, verdict, why_inconclusive
from .table import get_experiment
from .training import TrainSettings, train_variants

NAME = "lrn"
SOURCE = "the VGG paper: Simonyan & Zisserman 2014, Table 3"
CLAIM = "local response normalisation (VGG-A-LRN) brings no gain over VGG-A"
MODELS = {"vgg11": "VGG-A", "vgg11_lrn": "VGG-A-LRN"}
PAPER_TOP1 = {"vgg11": 29.6, "vgg11_lrn": 29.7}  # Table 3, ImageNet val, single scale, %


def build(name: str, input_size: int, width: float, fc_features: int):
    from ..models import create_model

    return create_model(
        name, num_classes=10, in_channels=1, input_size=input_size, width=width, fc_features=fc_features
    )


def run(
    out_dir: Path,
    quick: bool = False,
    seeds: int = 1,
    device: str = "auto",
    epochs: int | None = None,
    data_dir: str | None = None,
) -> dict:
    started, out_dir, device = begin(out_dir, device)
    # the paper's recipe: SGD momentum 0.9, lr 0.01 (/10 on plateaus), weight decay 5e-4, dropout 0.5
    if quick:
        size, width, fc = 28, 0.125, 64
        train = TrainSettings(
            epochs=1,
            batch_size=64,
            lr=0.01,
            weight_decay=5e-4,
            milestones=(),
            crop_padding=0,
            hflip=False,
            train_subset=512,
            test_subset=256,
        )
    else:
        size, width, fc = 32, 0.5, 512
        train = TrainSettings(
            epochs=20,
            batch_size=128,
            lr=0.01,
            weight_decay=5e-4,
            milestones=(0.5, 0.75),
            pad_to=32,
            warmup_epochs=1.0,
        )
    train.epochs = epochs or train.epochs
    settings = {
        "input": f"1×{size}×{size}",
        "width": width,
        "fc_features": fc,
        "epochs": train.epochs,
        "batch": train.batch_size,
        "optimizer": f"SGD lr {train.lr}, momentum 0.9, wd 5e-4",
        "augment": train.hflip,
        "train images": train.train_subset or "all 60,000",
        "test images": train.test_subset or "all 10,000",
        "seeds": seeds,
        "quick": quick,
    }

    variants = {
        m: (build, {"name": m, "input_size": size, "width": width, "fc_features": fc}) for m in MODELS
    }
    models = train_variants(variants, train, device, seeds, data_dir=data_dir)
    a, lrn = models["vgg11"]["final_test_error"], models["vgg11_lrn"]["final_test_error"]
    gain = a["mean"] - lrn["mean"]  # > 0: LRN helped
    noise = math.sqrt(a["std"] ** 2 / a["n"] + lrn["std"] ** 2 / lrn["n"]) if seeds > 1 else float("nan")
    significant = seeds > 1 and gain > 2 * noise
    why = why_inconclusive([(a, lrn)], chance_error(10), claims_a_difference=False)
    results = {
        "models": models,
        "lrn_gain_test_error": gain,
        "standard_error_of_difference": noise,
        "significant_gain": significant,
        "claim_holds": None if why else not significant,
        "inconclusive": why,
    }

    fig, axes = new_figure(2, width=4.8)
    for m, color in zip(MODELS, ("tab:blue", "tab:green"), strict=True):
        epochs = range(1, train.epochs + 1)
        axes[0].plot(epochs, models[m]["train_loss_curve"], color=color, label=MODELS[m])
        axes[1].plot(
            epochs, [100 * e for e in models[m]["test_error_curve"]], color=color, lw=2, label=MODELS[m]
        )
    axes[0].set_ylabel("training loss")
    axes[1].set_ylabel("test error (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    plot = save_figure(fig, out_dir, "exp-lrn.png")

    report = Report("LRN: VGG-A vs VGG-A-LRN", get_experiment(NAME))
    report.table(
        ["model", "params", "final training error", "final test error", "paper top-1 (ImageNet)", "s/epoch"],
        [
            (
                MODELS[m],
                models[m]["params"],
                pct(models[m]["final_train_error"]),
                pct(models[m]["final_test_error"]),
                f"{PAPER_TOP1[m]}%",
                models[m]["seconds_per_epoch"],
            )
            for m in MODELS
        ],
    )
    report.image(plot, "training loss and test error per epoch (mean over seeds)")
    said = verdict(
        results["claim_holds"],
        why,
        "the claim 'LRN brings no gain' shows here",
        "the claim 'LRN brings no gain' does NOT show here",
    )
    worse = " (LRN made it worse by more than two standard errors)" if seeds > 1 and -gain > 2 * noise else ""
    spread = f" (standard error of the difference {100 * noise:.2f})" if seeds > 1 else ""
    report.para(
        f"LRN changes the test error by {-100 * gain:+.2f} points{spread}{worse}. **Verdict:** {said}."
    )
    if quick:
        report.para("Quick mode: a tiny VGG on 512 images for one epoch, to test the pipeline.")
    return finish(report, out_dir, NAME, settings, results, started, device)
