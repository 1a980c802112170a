"""Ng's course / He et al. 2015, Fig. 1 and 6: the degradation problem and how residual connections fix it.

Ng's course: "for a plain network, in theory the training error should keep falling as layers are added, but in
practice it rises once the net is deep enough; for a residual network the training error keeps falling".
He et al. show it on CIFAR-10 with 6n+2-layer nets of 16-32-64 filters: plain-56 has *higher training and
test error* than plain-20, while ResNet-56 is below ResNet-20.

Here: plain-20, plain-56, ResNet-20 and ResNet-56 (the zoo's CIFAR-style nets, 1 input channel) trained on
Fashion-MNIST padded to 32×32 with the paper's recipe (SGD 0.1, momentum 0.9, weight decay 1e-4, batch
128, lr /10 at 50% and 75% of training, 4-pixel random crops and flips), plus CIFAR-10 when its files are
present. The verdict compares the final training error (mean of the last 3 epochs, mean over seeds).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from ..errors import DataError
from ..plots import new_figure, save_figure
from .report import Report, begin, finish, pct
from .stats import chance_error, verdict, why_inconclusive
from .table import get_experiment
from .training import TrainSettings, load_data, train_variants

NAME = "degradation"
SOURCE = "Ng's course; He et al. 2015, Fig. 1/6"
CLAIM = "a deeper plain net has higher training error than a shallower one; a residual net does not"
MODELS = ["plain20", "plain56", "resnet20", "resnet56"]
COLORS = {"20": "tab:orange", "56": "tab:red"}
PAPER_CIFAR10_TEST_ERROR = {"resnet20": 8.75, "resnet56": 6.97}  # He et al. Table 6, %


def build(name: str, in_channels: int):
    from ..models import create_model

    return create_model(name, num_classes=10, in_channels=in_channels)


def settings_for(quick: bool, dataset: str) -> TrainSettings:
    if quick:  # exercises every code path; the numbers mean nothing
        return TrainSettings(
            epochs=1,
            batch_size=64,
            train_subset=128,
            test_subset=128,
            warmup_epochs=0.5,
            pad_to=None,
            extra={"note": "quick: 128 images, 1 epoch"},
        )
    # He et al. train 64k iterations (~164 epochs); 30 epochs already separate the curves on Fashion-MNIST.
    # One epoch of linear warm-up keeps the 56-layer plain net from blowing up at lr 0.1 in the first steps.
    return TrainSettings(
        epochs=30, batch_size=128, warmup_epochs=1.0, pad_to=32 if dataset == "fashion-mnist" else None
    )


def run_dataset(
    dataset: str, quick: bool, seeds: int, device: str, epochs: int | None = None, data_dir: str | None = None
) -> dict:
    train = settings_for(quick, dataset)
    train.epochs = epochs or train.epochs
    channels = load_data(dataset, data_dir).train_images.shape[1]
    variants = {m: (build, {"name": m, "in_channels": channels}) for m in MODELS}
    models = train_variants(variants, train, device, seeds, dataset, data_dir=data_dir)
    return {"settings": train, "models": models, "verdict": judge(models)}


def judge(models: dict) -> dict:
    """The claim, from the final errors (mean over seeds); ``claim_holds`` is None, with the reason in
    ``inconclusive``, when the training errors cannot carry it (:func:`~cnnzoo.experiments.stats.why_inconclusive`)."""
    tr = {m: models[m]["final_train_error"]["mean"] for m in MODELS}
    te = {m: models[m]["final_test_error"]["mean"] for m in MODELS}
    out = {
        "plain56_trains_worse_than_plain20": tr["plain56"] > tr["plain20"],
        "plain56_tests_worse_than_plain20": te["plain56"] > te["plain20"],
        "resnet56_trains_at_least_as_well_as_resnet20": tr["resnet56"] <= tr["resnet20"],
        "resnet56_tests_at_least_as_well_as_resnet20": te["resnet56"] <= te["resnet20"],
    }
    err = {m: models[m]["final_train_error"] for m in MODELS}
    reason = why_inconclusive(
        [(err["plain56"], err["plain20"]), (err["resnet56"], err["resnet20"])], chance_error(10)
    )
    out["inconclusive"] = reason
    out["claim_holds"] = (
        None
        if reason
        else (
            out["plain56_trains_worse_than_plain20"] and out["resnet56_trains_at_least_as_well_as_resnet20"]
        )
    )
    return out


def plot(result: dict, dataset: str, out_dir: Path) -> str:
    """He et al. Fig. 1/6 style: plain nets left, ResNets right; training error dashed, test error bold.

    The top row shows every value (early swings of a deep plain net can reach far above 20%); the bottom row
    zooms into the second half of training, where the final errors are compared."""
    fig, axes = new_figure(2, width=5.2, height=3.4, nrows=2)
    models = result["models"]
    n = len(models[MODELS[0]]["test_error_curve"])
    epochs = range(1, n + 1)
    for col, family in enumerate(("plain", "resnet")):
        name = "plain" if family == "plain" else "ResNet"
        for ax in (axes[col], axes[2 + col]):
            for depth in ("20", "56"):
                m = models[f"{family}{depth}"]
                ax.plot(
                    epochs,
                    [100 * e for e in m["train_error_curve"]],
                    ls="--",
                    lw=1,
                    color=COLORS[depth],
                    label=f"{name}-{depth} train",
                )
                ax.plot(
                    epochs,
                    [100 * e for e in m["test_error_curve"]],
                    lw=2.2,
                    color=COLORS[depth],
                    label=f"{name}-{depth} test",
                )
            ax.set_xlabel("epoch")
            ax.set_ylabel("error (%)")
            ax.grid(alpha=0.3)
        axes[col].set_title(f"{'plain' if family == 'plain' else 'residual'} nets on {dataset}: all epochs")
        axes[2 + col].set_title(f"second half (epochs {n // 2 + 1}–{n}), zoomed")
        axes[col].legend(fontsize=8)
    # the same y-range on both panels of a row, so they compare at a glance
    top = max(a.get_ylim()[1] for a in axes[:2])
    half = [
        100 * v
        for m in models.values()
        for key in ("train_error_curve", "test_error_curve")
        for v in m[key][n // 2 :]
    ]
    lo, hi = min(half), max(half)
    for a in axes[:2]:
        a.set_ylim(0, top)
    for a in axes[2:]:
        a.set_xlim(n // 2 + 0.5, n + 0.5)
        a.set_ylim(max(0.0, lo - 0.1 * (hi - lo) - 0.05), hi + 0.1 * (hi - lo) + 0.05)
    return save_figure(fig, out_dir, f"exp-degradation-{dataset}.png")


def run(
    out_dir: Path,
    quick: bool = False,
    seeds: int = 1,
    device: str = "auto",
    epochs: int | None = None,
    data_dir: str | None = None,
) -> dict:
    started, out_dir, device = begin(out_dir, device)
    datasets = ["fashion-mnist"]
    if not quick:
        try:  # CIFAR-10 only where its files already are (experiments never download)
            load_data("cifar10", data_dir)
            datasets.append("cifar10")
        except DataError:
            pass
    results = {ds: run_dataset(ds, quick, seeds, device, epochs, data_dir) for ds in datasets}
    return write_outputs(out_dir, results, seeds, quick, started, device)


def write_outputs(
    out_dir: Path,
    results: dict,
    seeds: int,
    quick: bool,
    started: float,
    device: str,
    note: str = "",
    hardware: dict | None = None,
) -> dict:
    """report.md, the plots and results.json for ``results = {dataset: {"settings", "models", "verdict"}}``."""
    datasets = list(results)
    plots = {ds: plot(results[ds], ds, out_dir) for ds in datasets}
    settings = {
        "models": ", ".join(MODELS),
        "datasets": ", ".join(datasets),
        "seeds": seeds,
        "quick": quick,
        "recipe": "SGD momentum 0.9, wd 1e-4, lr 0.1 (/10 at 50%, 75%), 1 epoch warm-up, bf16 on GPU",
        **{
            f"{k} ({ds})": v
            for ds in datasets
            for k, v in vars(results[ds]["settings"]).items()
            if k in ("epochs", "batch_size", "pad_to", "crop_padding", "hflip", "train_subset", "test_subset")
        },
    }

    report = Report("Degradation: plain vs residual nets at depth 20 and 56", get_experiment(NAME))
    if note:
        report.para(note)
    for ds in datasets:
        r = results[ds]
        report.heading(f"{ds}")
        report.table(
            ["model", "params", "final training error", "final test error", "test error per seed", "s/epoch"],
            [
                (
                    m,
                    r["models"][m]["params"],
                    pct(r["models"][m]["final_train_error"]),
                    pct(r["models"][m]["final_test_error"]),
                    per_seed(r["models"][m]["final_test_error"]),
                    r["models"][m]["seconds_per_epoch"],
                )
                for m in MODELS
            ],
        )
        report.image(plots[ds], f"training (dashed) and test (bold) error on {ds}")
        v = r["verdict"]
        report.para(
            "In the means: "
            f"plain-56 {'trains worse' if v['plain56_trains_worse_than_plain20'] else 'does NOT train worse'} "
            f"than plain-20 and {'tests worse' if v['plain56_tests_worse_than_plain20'] else 'does not test worse'}; "
            f"ResNet-56 {'trains at least as well' if v['resnet56_trains_at_least_as_well_as_resnet20'] else 'trains WORSE'}"
            f" as ResNet-20 and {'tests at least as well' if v['resnet56_tests_at_least_as_well_as_resnet20'] else 'tests worse'}."
        )
        said = verdict(
            v["claim_holds"],
            v.get("inconclusive"),
            "the degradation claim shows in the training error",
            "the degradation claim does NOT show in the training error",
        )
        report.para(f"**Verdict ({ds}):** {said}.")
    report.para(
        "Final error = mean of the last 3 epochs (training error: averaged over each epoch's batches in "
        "training mode, with augmentation, as He et al. plot it). Paper, CIFAR-10 test error: ResNet-20 "
        "8.75%, ResNet-56 6.97%; plain-56 above plain-20 in both training and test error."
    )
    if quick:
        report.para(
            "Quick mode: 128 images and one epoch, to test the pipeline; the errors say nothing about the claim."
        )
    for ds in datasets:  # the per-seed histories stay in results.json; the settings go in as dicts
        results[ds]["settings"] = vars(results[ds]["settings"])
    # a run rebuilt from its log keeps the hardware and time of the run, not of the rebuild
    return finish(report, out_dir, NAME, settings, results, started, device, hardware)


def per_seed(stats: dict) -> str:
    """Each seed's value, three decimals of a percent: two seeds that agree to the second decimal show a
    "± 0.00" that is a coincidence of the values, not one run counted twice; this column shows which."""
    return ", ".join(f"{100 * v:.3f}%" for v in stats["values"])


# "  plain56 seed 1 epoch 14/30: train error 10.79%, test error 17.90% (13.5 s)", printed by training.train_job
_PROGRESS = re.compile(
    r"^\s*(\w+) seed (\d+) epoch (\d+)/(\d+): train error ([\d.]+)%, test error ([\d.]+)% \(([\d.]+) s\)"
)


def rebuild_from_log(log: Path, out_dir: Path, settings: TrainSettings, device: str, hardware: dict) -> dict:
    """Write the outputs of a run that was stopped (e.g. by a time limit) from its per-epoch progress lines.

    Every model is cut to the epochs that all its seeds *and* all the other models reached, so the final
    errors compare the nets at the same point of the same schedule. The losses are not in the log."""
    import numpy as np

    from ..models import create_model
    from .stats import mean_std

    runs: dict[tuple[str, int], dict[str, list]] = {}
    for line in Path(log).read_text().splitlines():
        if (m := _PROGRESS.match(line)) and m[1] in MODELS:
            h = runs.setdefault((m[1], int(m[2])), {"train_error": [], "test_error": [], "epoch_seconds": []})
            h["train_error"].append(float(m[5]) / 100)
            h["test_error"].append(float(m[6]) / 100)
            h["epoch_seconds"].append(float(m[7]))
    common = min(len(h["test_error"]) for h in runs.values())
    seeds = len({s for _, s in runs})
    models = {}
    for name in MODELS:
        hs = [{k: v[:common] for k, v in runs[(name, s)].items()} for s in range(seeds)]
        model = {"seeds": seeds, "params": sum(p.numel() for p in create_model(name, 10, 1).parameters())}
        for key in ("train_error", "test_error"):
            curves = np.array([h[key] for h in hs])  # (seeds, epochs)
            model[f"{key}_curve"] = curves.mean(0).tolist()
            model[f"final_{key}"] = mean_std(curves[:, -3:].mean(1))
        model["seconds_per_epoch"] = float(np.mean([h["epoch_seconds"] for h in hs]))
        model["histories"] = hs
        models[name] = model
    note = (
        f"Rebuilt from the progress log of a run stopped by its time limit: all nets are compared over the "
        f"{common} epochs that every run reached (of {settings.epochs} planned; the learning rate had "
        f"already dropped at {int(settings.milestones[0] * settings.epochs)} and "
        f"{int(settings.milestones[1] * settings.epochs)})."
    )
    settings.extra["epochs_reached"] = common
    results = {"fashion-mnist": {"settings": settings, "models": models, "verdict": judge(models)}}
    return write_outputs(Path(out_dir), results, seeds, False, time.time(), device, note, hardware)
