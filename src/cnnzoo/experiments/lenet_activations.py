"""d2l's LeNet and Ng's course: sigmoid vs tanh vs ReLU, average vs max pooling, in LeNet-5.

d2l: "the activation is sigmoid; ReLU is used more now, because sigmoid near 0 or 1 has vanishing
gradients". LeCun et al. used a scaled tanh and averaging subsampling; Ng's course draws average pooling,
d2l max pooling. Here ``lenet5_modern`` (conv6 5×5 pad 2 → pool → conv16 5×5 → pool → 120 → 84 → 10) is
trained in all six combinations with d2l's recipe (plain SGD, batch 256, constant lr, 10 epochs).

One learning rate for all would favour whichever activation it happens to suit (d2l trains its sigmoid
LeNet at lr 0.9, far above what suits ReLU), so every combination is trained over a grid of learning rates
and compared at its own best one, all at the same number of epochs. The best lr is the one with the lowest
final training loss: the claim is about how fast each fits, and choosing by test error would tune on the
test set.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..plots import new_figure, save_figure
from .report import Report, begin, finish, pct
from .stats import aggregate, chance_error, chance_loss, mean_std, verdict, why_inconclusive
from .table import get_experiment
from .training import TrainSettings, load_data, run_jobs, train_job

NAME = "lenet-activations"
SOURCE = "d2l; LeCun et al. 1998"
CLAIM = "in LeNet-5, ReLU trains faster than sigmoid (vanishing gradients); tanh, max vs average pooling"
ACTIVATIONS = ["sigmoid", "tanh", "relu"]
POOLS = ["avg", "max"]
COLORS = {"sigmoid": "tab:red", "tanh": "tab:orange", "relu": "tab:blue"}
STYLES = {"max": "-", "avg": "--"}
# factor-3 steps around d2l's 0.9; 2.7 is there so that sigmoid's best is not at the edge of the grid
LRS = (0.01, 0.03, 0.1, 0.3, 0.9, 2.7)
QUICK_LRS = (0.1, 0.9)


def build(activation: str, pool: str):
    from ..models import create_model

    return create_model("lenet5_modern", num_classes=10, in_channels=1, activation=activation, pool=pool)


def sweep_job(kwargs: dict, settings: TrainSettings, device: str, seed: int, data_dir: str | None) -> dict:
    """One run of the sweep; a run whose loss became NaN or infinite is a result ("diverged"), not a crash."""
    from ..train import DivergedError

    try:
        return train_job(build, kwargs, settings, device, seed, data_dir=data_dir)
    except DivergedError as e:
        return {"diverged": str(e)}


def sweep(train: TrainSettings, lrs, device: str, seeds: int, data_dir: str | None) -> dict:
    """``{variant: {"grid": [per lr, ascending: aggregate + "lr", or {"lr", "diverged"}], "best": lr}}``.

    A best lr at the edge of the grid says only that the optimum may lie beyond it, so the grid of that
    variant is extended by factors of 3 (within :data:`LR_LIMITS`) until its best lr is inside it."""
    load_data("fashion-mnist", data_dir)  # fails here, once, when the files are missing
    variants = {f"{a}-{p}": {"activation": a, "pool": p} for a in ACTIVATIONS for p in POOLS}
    grids = _train_grid(variants, list(lrs), train, device, seeds, data_dir)
    out = {}
    for v, kwargs in variants.items():
        grid = grids[v]
        while (step := _beyond_edge(grid)) is not None:
            grid = sorted(
                grid + _train_grid({v: kwargs}, [step], train, device, seeds, data_dir)[v],
                key=lambda g: g["lr"],
            )
        out[v] = {"grid": grid, "best": _best(grid)}
    return out


LR_LIMITS = (1e-4, 10.0)  # TrainConfig takes lr in (0, 10]


def _train_grid(variants: dict, lrs: list, train: TrainSettings, device: str, seeds: int, data_dir) -> dict:
    jobs = [
        (kw, replace(train, lr=lr), device, seed, data_dir)
        for kw in variants.values()
        for lr in lrs
        for seed in range(seeds)
    ]
    done = iter(run_jobs(sweep_job, jobs, parallel=len(jobs) if device.startswith("cuda") else 1))
    out = {}
    for v in variants:
        out[v] = []
        for lr in lrs:
            hs = [next(done) for _ in range(seeds)]
            bad = [h["diverged"] for h in hs if "diverged" in h]
            out[v].append({"lr": lr, "diverged": bad[0]} if bad else {"lr": lr, **aggregate(hs, last=1)})
    return out


def _best(grid: list[dict]) -> float | None:
    """The lr with the lowest final training loss (None when every one diverged)."""
    fitted = [g for g in grid if "diverged" not in g]
    return min(fitted, key=lambda g: g["final_train_loss"]["mean"])["lr"] if fitted else None


def _beyond_edge(grid: list[dict]) -> float | None:
    """The next lr to try when the best is the grid's smallest or largest (a factor 3 beyond), else None."""
    best, lrs = _best(grid), [g["lr"] for g in grid]
    if best is None or len(lrs) < 2:
        return None
    # six significant digits: 0.9 × 3 is 2.7, not 2.7000000000000002, in the report and results.json
    step = (
        float(f"{best * 3:.6g}")
        if best == max(lrs)
        else float(f"{best / 3:.6g}")
        if best == min(lrs)
        else None
    )
    return step if step is not None and LR_LIMITS[0] <= step <= LR_LIMITS[1] else None


def run(
    out_dir: Path,
    quick: bool = False,
    seeds: int = 1,
    device: str = "auto",
    epochs: int | None = None,
    data_dir: str | None = None,
) -> dict:
    started, out_dir, device = begin(out_dir, device)
    # d2l's recipe: plain SGD (no momentum, no weight decay), batch 256, constant lr, 10 epochs. No
    # augmentation: the question is how fast each one fits.
    train = TrainSettings(
        epochs=epochs or (1 if quick else 10),
        batch_size=256,
        momentum=0.0,
        weight_decay=0.0,
        milestones=(),
        crop_padding=0,
        hflip=False,
        train_subset=2048 if quick else None,
        test_subset=1000 if quick else None,
    )
    lrs = QUICK_LRS if quick else LRS
    settings = {
        "model": "lenet5_modern (1×28×28)",
        "epochs": train.epochs,
        "batch": train.batch_size,
        "optimizer": "plain SGD (d2l): no momentum, no weight decay, constant lr",
        "learning rates": ", ".join(map(str, lrs)) + " (×3 beyond where the best is at an edge)",
        "best lr chosen by": "lowest final training loss",
        "train images": train.train_subset or "all 60,000",
        "test images": train.test_subset or "all 10,000",
        "seeds": seeds,
        "quick": quick,
    }
    swept = sweep(train, lrs, device, seeds, data_dir)
    best_lr = {v: s["best"] for v, s in swept.items()}
    if any(lr is None for lr in best_lr.values()):
        raise RuntimeError(
            f"every learning rate diverged for {[v for v, lr in best_lr.items() if lr is None]}"
        )
    runs = {v: next(g for g in s["grid"] if g["lr"] == s["best"]) for v, s in swept.items()}
    combos = [(a, p) for a in ACTIVATIONS for p in POOLS]

    def first_loss(a: str, p: str) -> float:
        return runs[f"{a}-{p}"]["train_loss_curve"][0]

    def final_loss(a: str, p: str) -> float:
        return runs[f"{a}-{p}"]["final_train_loss"]["mean"]

    findings = {
        "relu_fits_faster_than_sigmoid": all(first_loss("relu", p) < first_loss("sigmoid", p) for p in POOLS),
        "relu_lower_final_loss_than_sigmoid": all(
            final_loss("relu", p) < final_loss("sigmoid", p) for p in POOLS
        ),
        "tanh_between": all(
            first_loss("relu", p) <= first_loss("tanh", p) <= first_loss("sigmoid", p) for p in POOLS
        ),
        "max_pool_lower_test_error": {
            a: runs[f"{a}-max"]["final_test_error"]["mean"] < runs[f"{a}-avg"]["final_test_error"]["mean"]
            for a in ACTIVATIONS
        },
    }
    findings["inconclusive"] = _inconclusive(runs)
    tried = sorted({g["lr"] for s in swept.values() for g in s["grid"]})
    at_edge = sorted(v for v, s in swept.items() if s["best"] in (s["grid"][0]["lr"], s["grid"][-1]["lr"]))
    results = {
        "learning_rates": list(lrs),
        "learning_rates_tried": tried,
        "best_lr": best_lr,
        "best_lr_at_grid_edge": at_edge,
        "sweep": {v: s["grid"] for v, s in swept.items()},
        "runs": runs,
        "verdict": findings,
    }
    plot = _plot(swept, runs, best_lr, train.epochs, out_dir)

    report = Report("LeNet-5: sigmoid vs tanh vs ReLU, average vs max pooling", get_experiment(NAME))
    report.heading("Learning-rate sweep (final training loss)")
    cells = {v: {g["lr"]: _loss_cell(g) for g in s["grid"]} for v, s in swept.items()}
    report.table(
        ["activation", "pool", *[f"lr {lr}" for lr in tried], "best lr"],
        [(a, p, *[cells[f"{a}-{p}"].get(lr, "–") for lr in tried], best_lr[f"{a}-{p}"]) for a, p in combos],
    )
    report.para(
        "Each combination is compared at its own best learning rate (lowest final training loss), all at "
        f"{train.epochs} epoch{'s' if train.epochs > 1 else ''}. "
        + (
            f"Still at the edge of the grid (its lr limit reached): {', '.join(at_edge)}."
            if at_edge
            else "Every best lr has a worse one on each side of it."
        )
    )
    report.heading("Each at its best learning rate")
    report.table(
        [
            "activation",
            "pool",
            "best lr",
            "params",
            "epoch-1 training loss",
            "final training loss",
            "final training error",
            "final test error",
        ],
        [
            (
                a,
                p,
                best_lr[f"{a}-{p}"],
                runs[f"{a}-{p}"]["params"],
                first_loss(a, p),
                runs[f"{a}-{p}"]["final_train_loss"],
                pct(runs[f"{a}-{p}"]["final_train_error"]),
                pct(runs[f"{a}-{p}"]["final_test_error"]),
            )
            for a, p in combos
        ],
    )
    report.image(plot, "final training loss per learning rate; training loss and test error at the best lr")
    why = findings["inconclusive"]
    max_wins = ", ".join(a for a, v in findings["max_pool_lower_test_error"].items() if v) or "none"
    report.para(
        "ReLU fits faster than sigmoid (lower epoch-1 loss, both poolings): "
        f"{verdict(findings['relu_fits_faster_than_sigmoid'], why['relu_fits_faster_than_sigmoid'])}. "
        f"ReLU ends lower than sigmoid: {verdict(findings['relu_lower_final_loss_than_sigmoid'], why['relu_lower_final_loss_than_sigmoid'])}. "
        f"tanh in between: {verdict(findings['tanh_between'], why['tanh_between'])}. Max pooling beats average "
        f"pooling in test error for: {verdict(True, why['max_pool_lower_test_error'], max_wins)}."
    )
    if quick:
        report.para(
            f"Quick mode: 2,048 images, one epoch, learning rates {', '.join(map(str, lrs))}: tests the "
            "pipeline only."
        )
    return finish(report, out_dir, NAME, settings, results, started, device)


def _inconclusive(runs: dict) -> dict:
    """Per verdict, why its numbers cannot carry it (:func:`~cnnzoo.experiments.stats.why_inconclusive`), or
    None: the epoch-1 losses per seed, the final losses and the final test errors."""

    def first(v: str) -> dict:
        return mean_std([h["train_loss"][0] for h in runs[v]["histories"]])

    def final(v: str) -> dict:
        return runs[v]["final_train_loss"]

    loss, error = chance_loss(10), chance_error(10)
    return {
        "relu_fits_faster_than_sigmoid": why_inconclusive(
            [(first(f"relu-{p}"), first(f"sigmoid-{p}")) for p in POOLS], loss
        ),
        "relu_lower_final_loss_than_sigmoid": why_inconclusive(
            [(final(f"relu-{p}"), final(f"sigmoid-{p}")) for p in POOLS], loss
        ),
        "tanh_between": why_inconclusive(
            [
                pair
                for p in POOLS
                for pair in (
                    (first(f"relu-{p}"), first(f"tanh-{p}")),
                    (first(f"tanh-{p}"), first(f"sigmoid-{p}")),
                )
            ],
            loss,
        ),
        "max_pool_lower_test_error": why_inconclusive(
            [
                (runs[f"{a}-max"]["final_test_error"], runs[f"{a}-avg"]["final_test_error"])
                for a in ACTIVATIONS
            ],
            error,
        ),
    }


def _loss_cell(g: dict) -> str:
    return "diverged" if "diverged" in g else f"{g['final_train_loss']['mean']:.4g}"


def _plot(swept: dict, runs: dict, best_lr: dict, epochs: int, out_dir: Path) -> str:
    """Sweep (final training loss against lr), then the best-lr runs' training loss and test error. The
    legend sits right of the panels: inside, it covered the dashed (average-pool) curves."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = new_figure(3, width=4.2)
    x = range(1, epochs + 1)
    for a in ACTIVATIONS:
        for p in POOLS:
            v, style = f"{a}-{p}", dict(color=COLORS[a], ls=STYLES[p], marker=".")
            fitted = [g for g in swept[v]["grid"] if "diverged" not in g]
            axes[0].plot([g["lr"] for g in fitted], [g["final_train_loss"]["mean"] for g in fitted], **style)
            axes[0].plot(
                [best_lr[v]],
                [runs[v]["final_train_loss"]["mean"]],
                marker="o",
                mfc="none",
                color=COLORS[a],
                ms=9,
            )
            axes[1].plot(x, runs[v]["train_loss_curve"], **style, label=f"{a}, {p} pool (lr {best_lr[v]})")
            axes[2].plot(x, [100 * e for e in runs[v]["test_error_curve"]], **style)
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="learning rate",
        ylabel="final training loss",
        title="sweep (circle: best lr)",
    )
    axes[1].set(
        yscale="log", xlabel="epoch", ylabel="training loss (epoch mean)", title="at each one's best lr"
    )
    axes[2].set(xlabel="epoch", ylabel="test error (%)", title="at each one's best lr")
    for ax in axes:
        ax.grid(alpha=0.3)
    for ax in axes[1:]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[1].get_legend_handles_labels()
    axes[2].legend(
        handles, labels, fontsize=7, handlelength=3.5, loc="upper left", bbox_to_anchor=(1.02, 1.0)
    )
    return save_figure(fig, out_dir, "exp-lenet-activations.png")
