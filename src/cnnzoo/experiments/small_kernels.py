"""The VGG paper (Simonyan & Zisserman 2014), Sec. 2.3: stacks of 3×3 convs instead of one big kernel.

Two 3×3 convs (stride 1) see a 5×5 window, like one 5×5 conv, with 2·3·3·C² = 18C² weights instead of 25C²
(28% fewer); three see 7×7 with 27C² instead of 49C² (45% fewer), and put a ReLU between the convs. The
analyzer counts the parameters, MACs and receptive fields of the bare blocks (C in, C out, no bias); then
four small nets that differ only in their blocks are trained on Fashion-MNIST, as VGG's authors compared
net B with a shallower net using 5×5 convs (the 3×3 stack was better: 7% lower top-1 error).

Net (input 1×28×28; C = width):
    stem   conv 3×3 1→C, ReLU                                      C×28×28
    stage  BLOCK C→C, max-pool 2                                    C×14×14
    stage  BLOCK C→C, max-pool 2                                    C×7×7
    head   global average pool, linear C→10
BLOCK is one of the rows of ``BLOCKS`` (3×3 convs with a ReLU after each, or one k×k conv).
"""

from __future__ import annotations

from pathlib import Path

from ..plots import new_figure, save_figure
from .report import Report, begin, finish, pct
from .stats import chance_error, verdict, why_inconclusive
from .table import get_experiment
from .training import TrainSettings, train_variants

NAME = "small-kernels"
SOURCE = "the VGG paper: Simonyan & Zisserman 2014, Sec. 2.3"
CLAIM = (
    "two 3×3 convs see 5×5 with 18C² weights instead of 25C² (28% fewer); three see 7×7 with 27C² instead"
    " of 49C² (45% fewer), and train at least as well"
)

# name -> kernel sizes of the block's convs (each followed by a ReLU); pairs with the same field go together
BLOCKS: dict[str, tuple[int, ...]] = {
    "2×3×3": (3, 3),
    "1×5×5": (5,),
    "3×3×3": (3, 3, 3),
    "1×7×7": (7,),
}
PAIRS = [("2×3×3", "1×5×5", 18, 25), ("3×3×3", "1×7×7", 27, 49)]  # (small, big, weights/C² per the VGG paper)


def block(kernels: tuple[int, ...], channels: int, bias: bool = True):
    """Convs of ``kernels`` (C→C, 'same' padding, stride 1), each followed by a ReLU. (N,C,H,W) -> same."""
    from torch import nn

    layers = []
    for k in kernels:
        layers += [nn.Conv2d(channels, channels, k, padding=k // 2, bias=bias), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def small_net(block_name: str, width: int = 32, num_classes: int = 10, in_channels: int = 1):
    """The comparison net of the module docstring, with BLOCK = ``BLOCKS[block_name]``."""
    from torch import nn

    kernels = BLOCKS[block_name]
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(inplace=True),  # (N, C, 28, 28)
        block(kernels, width),
        nn.MaxPool2d(2),  # (N, C, 14, 14)
        block(kernels, width),
        nn.MaxPool2d(2),  # (N, C, 7, 7)
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, num_classes),  # (N, 10)
    )


def analyse_blocks(channels: int = 64, size: int = 28) -> dict:
    """Weights, MACs and receptive field of each bare block (no bias), from the analyzer."""
    from ..analysis import summary

    out = {}
    for name, kernels in BLOCKS.items():
        s = summary(block(kernels, channels, bias=False), input_size=(channels, size, size)).to_dict()
        out[name] = {
            "params": s["total"]["params"],
            "params_per_c2": s["total"]["params"] / channels**2,
            "macs": s["total"]["macs"],
            "receptive_field": s["total"]["receptive_field"]["size"],
        }
    return out


def run(
    out_dir: Path,
    quick: bool = False,
    seeds: int = 1,
    device: str = "auto",
    epochs: int | None = None,
    data_dir: str | None = None,
) -> dict:
    from ..analysis import summary

    started, out_dir, device = begin(out_dir, device)
    width = 8 if quick else 32
    train = TrainSettings(
        epochs=1 if quick else 15,
        batch_size=64 if quick else 128,
        lr=3e-3 if quick else 1e-3,
        weight_decay=0.0,
        optimizer="adam",
        milestones=(0.67,),
        crop_padding=0,
        hflip=False,
        train_subset=1024 if quick else None,
        test_subset=500 if quick else None,
    )
    train.epochs = epochs or train.epochs
    settings = {
        "channels C (analysis)": 64,
        "width C (nets)": width,
        "epochs": train.epochs,
        "optimizer": f"Adam lr {train.lr:g}, /10 at 67%",
        "batch": train.batch_size,
        "train images": train.train_subset or "all 60,000",
        "test images": train.test_subset or "all 10,000",
        "dataset": "fashion-mnist",
        "seeds": seeds,
        "quick": quick,
    }

    blocks = analyse_blocks(64)
    comparisons = []
    for small, big, seed_small, seed_big in PAIRS:
        a, b = blocks[small], blocks[big]
        comparisons.append(
            {
                "small": small,
                "big": big,
                "same_receptive_field": a["receptive_field"] == b["receptive_field"],
                "receptive_field": [a["receptive_field"], b["receptive_field"]],
                "params_per_c2": [a["params_per_c2"], b["params_per_c2"]],
                "seed_per_c2": [seed_small, seed_big],
                "fewer_params_pct": 100 * (1 - a["params"] / b["params"]),
                "fewer_macs_pct": 100 * (1 - a["macs"] / b["macs"]),
            }
        )

    nets = train_variants(
        {n: (small_net, {"block_name": n, "width": width}) for n in BLOCKS},
        train,
        device,
        seeds,
        data_dir=data_dir,
    )
    for n in BLOCKS:
        nets[n]["macs"] = summary(small_net(n, width), input_size=(1, 28, 28)).to_dict()["total"]["macs"]
    for c in comparisons:
        c["small_test_error"] = nets[c["small"]]["final_test_error"]["mean"]
        c["big_test_error"] = nets[c["big"]]["final_test_error"]["mean"]
        c["small_not_worse"] = c["small_test_error"] <= c["big_test_error"]
        errors = (nets[c["small"]]["final_test_error"], nets[c["big"]]["final_test_error"])
        c["inconclusive"] = why_inconclusive([errors], chance_error(10))
    results = {"blocks": blocks, "comparisons": comparisons, "nets": nets}

    fig, axes = new_figure(2, width=4.6)
    for ax, (small, big, *_) in zip(axes, PAIRS, strict=True):
        for n, color in ((small, "tab:blue"), (big, "tab:red")):
            epochs = range(1, train.epochs + 1)
            ax.plot(
                epochs, [100 * e for e in nets[n]["test_error_curve"]], color=color, lw=2, label=f"{n} test"
            )
            ax.plot(
                epochs,
                [100 * e for e in nets[n]["train_error_curve"]],
                color=color,
                ls="--",
                label=f"{n} train",
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel("error (%)")
        ax.set_title(f"{small} vs {big} (width {width})")
        ax.legend(fontsize=8)
    plot = save_figure(fig, out_dir, "exp-small-kernels.png")

    report = Report("Small kernels: 3×3 stacks vs one big kernel", get_experiment(NAME))
    report.heading("Parameters and receptive field (analyzer, C = 64, bias-free blocks)")
    report.table(
        ["block", "weights", "weights / C²", "the VGG paper", "MACs on 64×28×28", "receptive field"],
        [
            (
                n,
                blocks[n]["params"],
                blocks[n]["params_per_c2"],
                dict(PAIRS_SEED)[n],
                blocks[n]["macs"],
                f"{blocks[n]['receptive_field']}×{blocks[n]['receptive_field']}",
            )
            for n in BLOCKS
        ],
    )
    for c in comparisons:
        report.para(
            f"{c['small']} vs {c['big']}: {c['fewer_params_pct']:.1f}% fewer weights and MACs "
            f"({c['seed_per_c2'][0]}C² vs {c['seed_per_c2'][1]}C²), receptive field "
            f"{c['receptive_field'][0]} vs {c['receptive_field'][1]} "
            f"({'equal' if c['same_receptive_field'] else 'NOT equal'})."
        )
    report.heading("Trained on Fashion-MNIST")
    report.table(
        ["net", "params", "MACs", "final train error", "final test error", "s/epoch"],
        [
            (
                n,
                nets[n]["params"],
                nets[n]["macs"],
                pct(nets[n]["final_train_error"]),
                pct(nets[n]["final_test_error"]),
                nets[n]["seconds_per_epoch"],
            )
            for n in BLOCKS
        ],
    )
    report.image(plot, "training (dashed) and test (solid) error per epoch")
    for c in comparisons:
        said = verdict(
            c["small_not_worse"],
            c["inconclusive"],
            "the 3×3 stack did at least as well as the big kernel",
            "the 3×3 stack did worse than the big kernel",
        )
        report.para(
            f"**{c['small']} vs {c['big']}:** {said} ({100 * c['small_test_error']:.2f}% vs "
            f"{100 * c['big_test_error']:.2f}% test error)."
        )
    if quick:
        report.para("Quick mode: a subset and one epoch; the accuracies say nothing about the claim.")
    return finish(report, out_dir, NAME, settings, results, started, device)


# the VGG paper's weight counts per block, in units of C² (for the report's table)
PAIRS_SEED = [("2×3×3", "18C²"), ("1×5×5", "25C²"), ("3×3×3", "27C²"), ("1×7×7", "49C²")]
