"""d2l's LeNet and Ng's course: sigmoid vs tanh vs ReLU, average vs max pooling, in LeNet-5.

d2l: "the activation is sigmoid; ReLU is used more now, because sigmoid near 0 or 1 has vanishing
gradients". LeCun et al. used a scaled tanh and averaging subsampling; Ng's course draws average pooling,
d2l max pooling. Here ``lenet5_modern`` (conv6 5×5 pad 2 → pool → conv16 5×5 → pool → 120 → 84 → 10) is
trained in all six combinations with the same optimiser and budget; the claim is that ReLU reaches a lower
training loss sooner than sigmoid (tanh in between).
"""

from __future__ import annotations

from pathlib import Path

from ..plots import new_figure, save_figure
from .report import Report, begin, finish, pct
from .table import get_experiment
from .training import TrainSettings, train_variants

NAME = "lenet-activations"
ACTIVATIONS = ["sigmoid", "tanh", "relu"]
POOLS = ["avg", "max"]
COLORS = {"sigmoid": "tab:red", "tanh": "tab:orange", "relu": "tab:blue"}


def build(activation: str, pool: str):
    from ..models import create_model

    return create_model("lenet5_modern", num_classes=10, in_channels=1, activation=activation, pool=pool)


def run(
    out_dir: Path,
    quick: bool = False,
    seeds: int = 1,
    device: str = "auto",
    epochs: int | None = None,
    data_dir: str | None = None,
) -> dict:
    started, out_dir, device = begin(out_dir, device)
    # One plain SGD recipe for all six: momentum 0.9, lr 0.05 — enough for sigmoid to move at all, small
    # enough for ReLU not to diverge. No augmentation: the question is how fast each one fits.
    train = TrainSettings(epochs=1 if quick else 15, batch_size=128, lr=0.05, weight_decay=5e-4,
                          milestones=() if quick else (0.67,), augment=False,
                          train_subset=2048 if quick else None, test_subset=1000 if quick else None)  # fmt: skip
    train.epochs = epochs or train.epochs
    settings = {"model": "lenet5_modern (1×28×28)", "epochs": train.epochs, "batch": train.batch_size,
                "optimizer": "SGD lr 0.05, momentum 0.9, wd 5e-4", "train images": train.train_subset or "all 60,000",
                "test images": train.test_subset or "all 10,000", "seeds": seeds, "quick": quick}  # fmt: skip
    combos = [(a, p) for a in ACTIVATIONS for p in POOLS]
    variants = {f"{a}-{p}": (build, {"activation": a, "pool": p}) for a, p in combos}
    runs = train_variants(variants, train, device, seeds, last=1, data_dir=data_dir)

    def first_loss(a: str, p: str) -> float:
        return runs[f"{a}-{p}"]["train_loss_curve"][0]

    def final_loss(a: str, p: str) -> float:
        return runs[f"{a}-{p}"]["final_train_loss"]["mean"]

    verdict = {
        "relu_fits_faster_than_sigmoid": all(first_loss("relu", p) < first_loss("sigmoid", p) for p in POOLS),
        "relu_lower_final_loss_than_sigmoid": all(final_loss("relu", p) < final_loss("sigmoid", p) for p in POOLS),
        "tanh_between": all(first_loss("relu", p) <= first_loss("tanh", p) <= first_loss("sigmoid", p) for p in POOLS),
        "max_pool_lower_test_error": {a: runs[f"{a}-max"]["final_test_error"]["mean"]
                                      < runs[f"{a}-avg"]["final_test_error"]["mean"] for a in ACTIVATIONS},
    }  # fmt: skip
    results = {"runs": runs, "verdict": verdict}

    fig, axes = new_figure(2, width=4.8)
    for a in ACTIVATIONS:
        for p, ls in (("max", "-"), ("avg", "--")):
            r = runs[f"{a}-{p}"]
            epochs = range(1, train.epochs + 1)
            axes[0].plot(
                epochs, r["train_loss_curve"], color=COLORS[a], ls=ls, label=f"{a}, {p} pool", marker="."
            )
            axes[1].plot(epochs, [100 * e for e in r["test_error_curve"]], color=COLORS[a], ls=ls, marker=".")
    axes[0].set_ylabel("training loss (epoch mean)")
    axes[0].set_yscale("log")
    axes[1].set_ylabel("test error (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    plot = save_figure(fig, out_dir, "exp-lenet-activations.png")

    report = Report("LeNet-5: sigmoid vs tanh vs ReLU, average vs max pooling", get_experiment(NAME))
    report.table(
        ["activation", "pool", "params", "epoch-1 training loss", "final training loss", "final training error",
         "final test error"],
        [(a, p, runs[f"{a}-{p}"]["params"], first_loss(a, p), runs[f"{a}-{p}"]["final_train_loss"],
          pct(runs[f"{a}-{p}"]["final_train_error"]), pct(runs[f"{a}-{p}"]["final_test_error"])) for a, p in combos],
    )  # fmt: skip
    report.image(plot, "training loss and test error per epoch")
    yes = {True: "yes", False: "NO"}
    report.para(
        f"ReLU fits faster than sigmoid (lower epoch-1 loss, both poolings): {yes[verdict['relu_fits_faster_than_sigmoid']]}. "
        f"ReLU ends lower than sigmoid: {yes[verdict['relu_lower_final_loss_than_sigmoid']]}. "
        f"tanh in between: {yes[verdict['tanh_between']]}. Max pooling beats average pooling in test error for: "
        f"{', '.join(a for a, v in verdict['max_pool_lower_test_error'].items() if v) or 'none'}."
    )  # fmt: skip
    if quick:
        report.para("Quick mode: 2,048 images and one epoch, to test the pipeline.")
    return finish(report, out_dir, NAME, settings, results, started, device)
