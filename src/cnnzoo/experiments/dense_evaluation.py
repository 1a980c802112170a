"""The VGG paper (Simonyan & Zisserman 2014), §3.2: dense evaluation of a fully convolutional net.

VGG evaluates a test image whole: FC6 becomes a 7×7 conv, FC7/FC8 1×1 convs, the net slides over the
image and the class-score map is averaged. The paper's point (§2.4): "wherever the cat is in the image,
the averaged score map still finds it", while a crop can cut the object off.

Here the Keras MNIST example's CNN (``keras_mnist_cnn``: 28 -> 25 -> 8 -> 5 -> 1, stride 9) is trained
with :func:`cnnzoo.fit` on Fashion-MNIST at 28×28. Each test item is then pasted at a random place on a
black 56×56 canvas, and the canvases are classified by

- dense evaluation: the converted net on the whole canvas (a 4×4 score map), posteriors averaged over the
  map and with the mirrored canvas (``cnnzoo.convert.dense_predict``);
- resize: the whole canvas shrunk to 28×28 (the item becomes 14×14) through the original net;
- centre crop: the middle 28×28 of the canvas (the item is partly cut off unless it sits in the middle);
- 10-crop: the four corner crops and the centre crop, and their mirror images, posteriors averaged;

against the net on the original centred 28×28 test images as the ceiling.
"""

from __future__ import annotations

from pathlib import Path

from ..device import seed_everything
from ..plots import new_figure, save_figure
from .report import Report, begin, finish
from .stats import at_chance, chance_error, mean_std, within_noise
from .table import get_experiment
from .training import load_data

NAME = "dense-evaluation"
SOURCE = "the VGG paper: Simonyan & Zisserman 2014, Sec. 3.2"
CLAIM = "VGG's test-time FC→conv conversion gives the same scores and takes any input size"
MODEL = "keras_mnist_cnn"
# keras_mnist_cnn has stride 9: 42 -> 39 -> 13 -> 10 -> 3 gives a 3×3 score map (the item covers most of the
# canvas, as objects do in ImageNet photos); 56 -> 53 -> 17 -> 14 -> 4 a 4×4 one (the item covers a quarter).
CANVASES = (42, 56)
SHIFT_PAD = (
    8  # training shifts of ±8 px (VGG trains on random crops): windows up to ~a stride off stay familiar
)
METHODS = {
    "centred_28": "original 28×28 test image (ceiling)",
    "dense": "dense evaluation + flip (VGG)",
    "dense_noflip": "dense evaluation, no flip",
    "dense_max": "dense, max over positions",
    "ten_crop": "10 crops of 28×28 (corners + centre, mirrored)",
    "resize": "canvas resized to 28×28",
    "centre_crop": "centre crop 28×28",
}
COLORS = ("0.6", "tab:blue", "tab:cyan", "tab:green", "tab:purple", "tab:orange", "tab:red")


def make_canvases(images, size: int, generator):
    """Paste each (N, C, h, w) uint8 image at a uniformly random place on a black size×size canvas.
    Returns the canvases (N, C, size, size) and the top-left corners (N, 2) as (row, col)."""
    import torch

    n, c, h, w = images.shape
    rows = torch.randint(0, size - h + 1, (n,), generator=generator)
    cols = torch.randint(0, size - w + 1, (n,), generator=generator)
    canvases = torch.zeros(n, c, size, size, dtype=images.dtype)
    for i in range(n):  # 10,000 small copies: a loop is clearer than a scatter and fast enough
        canvases[i, :, rows[i] : rows[i] + h, cols[i] : cols[i] + w] = images[i]
    return canvases, torch.stack([rows, cols], dim=1)


def _whole_image(card):
    """uint8 images of any size -> the floats the model of ``card`` takes, normalised as in training but never
    resized: dense evaluation slides the net over the whole canvas."""
    from ..preprocess import preprocess

    return lambda x: preprocess(x, card.replace(input_size=(card.channels, *x.shape[-2:])))


def _evaluate(model, fc, prep, canvases, test_x, test_y, batch: int = 500) -> dict:
    """Per-image correctness (bool tensors) of every method on one set of canvases."""
    import torch
    import torch.nn.functional as F

    from ..dense import dense_predict

    size = canvases.shape[-1]
    lo = (size - 28) // 2
    correct = {m: [] for m in METHODS}
    with torch.inference_mode():
        for start in range(0, len(test_y), batch):
            canvas = prep(canvases[start : start + batch])  # (B, 1, size, size)
            small = F.interpolate(canvas, size=28, mode="bilinear", antialias=True, align_corners=False)
            noflip = dense_predict(fc, canvas, scales=(size,), flip=False)
            outputs = {
                "centred_28": model(prep(test_x[start : start + batch])),
                "dense": dense_predict(fc, canvas, scales=(size,), flip=True).scores,
                "dense_noflip": noflip.scores,
                "dense_max": noflip.maps[0].amax(dim=(2, 3)),  # each class at its most confident position
                "ten_crop": dense_predict(fc, canvas, scales=(size,), flip=True, crops=5).scores,
                "resize": model(small),
                "centre_crop": model(canvas[..., lo : lo + 28, lo : lo + 28]),
            }
            for m, scores in outputs.items():
                correct[m].append(scores.argmax(dim=1) == test_y[start : start + batch])
    return {m: torch.cat(v) for m, v in correct.items()}


SUBJECT = (
    "dense"  # dense evaluation + flip, as VGG does it: every other method (but the ceiling) is its baseline
)
BASELINES = tuple(m for m in METHODS if m not in (SUBJECT, "centred_28"))


def paired_difference(correct: dict) -> dict:
    """Per baseline: the per-image differences in correctness, subject minus baseline (same canvases)."""
    subject = correct[SUBJECT].float()
    return {b: subject - correct[b].float() for b in BASELINES}


def compare(accuracy: dict, diffs: dict) -> dict:
    """``{size: {baseline: {"delta", "se", "outcome"}}}``: accuracy of dense + flip minus the baseline's (a
    fraction), the standard error of that paired difference, and "wins" / "loses" when it is at least two
    standard errors from zero, else "tie"; "inconclusive" when both are at chance level."""
    out = {}
    for size, by_method in accuracy.items():
        out[size] = {}
        for b in BASELINES:
            delta = by_method[SUBJECT]["mean"] - by_method[b]["mean"]
            d = diffs[size][b]
            se = float(d.std() / len(d) ** 0.5) if len(d) > 1 else 0.0
            errors = (1 - by_method[SUBJECT]["mean"], 1 - by_method[b]["mean"])
            if at_chance(*errors, chance_error(10)):
                outcome = "inconclusive"
            else:
                outcome = (
                    "tie" if within_noise(delta, se) or delta == 0 else ("wins" if delta > 0 else "loses")
                )
            out[size][b] = {"delta": delta, "se": se, "outcome": outcome}
    return out


def headline(accuracy: dict, comparison: dict) -> str:
    """Where dense evaluation + flip wins and where it loses, against every baseline at every canvas size."""
    short = {
        "dense": "dense evaluation + flip",
        "dense_noflip": "dense without flip",
        "dense_max": "the max over positions",
        "ten_crop": "10 crops",
        "resize": "resizing",
        "centre_crop": "the centre crop",
    }
    parts = []
    for size, cmp in comparison.items():
        acc = 100 * accuracy[size][SUBJECT]["mean"]
        said = []
        for outcome, verb in (
            ("wins", "beats"),
            ("loses", "loses to"),
            ("tie", "ties with"),
            ("inconclusive", "is inconclusive (both at chance level) against"),
        ):
            items = sorted(
                (b for b in BASELINES if cmp[b]["outcome"] == outcome), key=lambda b: -abs(cmp[b]["delta"])
            )
            if items:
                said.append(
                    f"{verb} " + ", ".join(f"{short[b]} ({100 * cmp[b]['delta']:+.2f})" for b in items)
                )
        best = max(METHODS.keys() - {"centred_28"}, key=lambda m: accuracy[size][m]["mean"])
        parts.append(
            f"At {size}×{size}, dense evaluation + flip ({acc:.2f}%) {'; '.join(said)}; the best "
            f"method there is {short[best]} ({100 * accuracy[size][best]['mean']:.2f}%)."
        )
    return " ".join(parts) + " (Points of accuracy; a tie is a difference under two standard errors.)"


def _heatmap_example(fc, prep, classes, canvases, corners, labels, out_dir: Path) -> str:
    """Score map of the true class over the canvas whose item is farthest from the centre, as a PNG."""
    import torch

    from ..dense import dense_predict
    from ..plots import save_heatmap

    size = canvases.shape[-1]
    i = int(torch.argmax((corners - (size - 28) // 2).abs().sum(dim=1)))
    canvas = prep(canvases[i : i + 1])
    result = dense_predict(fc, canvas, scales=(size,), flip=False)
    label = int(labels[i])
    name = f"dense_evaluation_heatmap_{size}.png"
    h, w = result.maps[0].shape[-2:]
    title = f"'{classes[label]}': its posterior over a {size}×{size} canvas ({h}×{w} score map)"
    save_heatmap(canvas[0], result.maps[0][0], label, out_dir / name, title=title)
    return name


def _by_shift(correct: dict, corners, size: int, n_bins: int = 4) -> tuple[dict, list[str]]:
    """Accuracy per method against the item's distance from the canvas centre (max of |dx|, |dy|, px)."""
    import torch

    half = (size - 28) // 2
    shift = (corners - half).abs().max(dim=1).values  # 0 (centred) .. half (in a corner)
    edges = torch.linspace(0, half + 1, n_bins + 1).round().long()
    bins = torch.bucketize(shift, edges[1:-1], right=True)
    acc = {m: [float(c[bins == b].float().mean()) for b in range(n_bins)] for m, c in correct.items()}
    return acc, [f"{int(edges[b])}-{int(edges[b + 1]) - 1}" for b in range(n_bins)]


def _plot(accuracy: dict, by_shift: dict, bin_labels: dict, seeds: int, out_dir: Path) -> str:
    fig, axes = new_figure(3, width=4.6, height=3.8)
    names = list(METHODS)
    for k, size in enumerate(CANVASES):
        means = [100 * accuracy[size][m]["mean"] for m in names]
        errs = [100 * accuracy[size][m]["std"] for m in names] if seeds > 1 else None
        y = [i + 0.4 * k for i in range(len(names))]
        axes[0].barh(
            y,
            means,
            height=0.4,
            xerr=errs,
            color=COLORS,
            alpha=1.0 if k == 0 else 0.5,
            label=f"{size}×{size} canvas",
        )
        for yy, v in zip(y, means, strict=True):
            axes[0].text(v + 0.5, yy, f"{v:.1f}", va="center", fontsize=6)
    axes[0].set_yticks([i + 0.2 for i in range(len(names))], [METHODS[m] for m in names], fontsize=7)
    axes[0].invert_yaxis()
    axes[0].set_xlim(0, 110)
    axes[0].set_xlabel("test accuracy (%) — dark: 42×42, light: 56×56")
    for ax, size in zip(axes[1:], CANVASES, strict=True):
        for m, color in zip(names, COLORS, strict=True):
            ax.plot(
                bin_labels[size],
                [100 * a for a in by_shift[size][m]],
                marker="o",
                color=color,
                label=METHODS[m],
            )
        ax.set_title(f"{size}×{size} canvas", fontsize=9)
        ax.set_xlabel("item's distance from the centre (px)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    # right of the last panel: inside, it covered the curves of the far-from-centre bins
    axes[2].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return save_figure(fig, out_dir, "dense_evaluation.png")


def run(
    out_dir: Path, quick: bool = False, seeds: int = 1, device: str = "auto", data_dir: str | None = None
) -> dict:
    import torch

    from ..card import card_of
    from ..convert import score_map_size, to_fully_convolutional
    from ..models import create_model
    from ..train import fit

    started, out_dir, device = begin(out_dir, device)
    ds = load_data("fashion-mnist", data_dir)
    epochs, limit, n_test = (2, 8000, 1000) if quick else (8, None, len(ds.test_labels))
    settings = {
        "model": MODEL,
        "train size": "1×28×28",
        "canvases": ", ".join(f"{s}×{s}" for s in CANVASES) + " black, item at a uniformly random place",
        "epochs": epochs,
        "optimizer": "SGD momentum 0.9 (nesterov), one-cycle lr 0.05, wd 5e-4, batch 128",
        "augmentation": f"shifts ±{SHIFT_PAD} px, mirroring",
        "train images": limit or "54,000 (10% validation)",
        "test canvases": n_test,
        "seeds": seeds,
        "quick": quick,
    }
    test_x, test_y = ds.test_images[:n_test], ds.test_labels[:n_test]

    per_seed, shift_runs, heatmaps, bin_labels = [], [], [], {}
    diffs: dict = {size: {b: [] for b in BASELINES} for size in CANVASES}
    for seed in range(seeds):
        seed_everything(seed)
        model = create_model(MODEL, num_classes=10)
        history = fit(
            model,
            ds,
            epochs=epochs,
            batch_size=128,
            lr=0.05,
            limit=limit,
            seed=seed,
            crop_padding=SHIFT_PAD,
            device=str(device),
            progress="quiet",
        )
        model = model.cpu().eval()  # inference on the CPU: the canvases are small
        prep = _whole_image(card_of(model))
        fc = to_fully_convolutional(model).eval()
        row, shifts = {"fit_test_accuracy": history.test.get("accuracy")}, {}
        for size in CANVASES:
            canvases, corners = make_canvases(test_x, size, torch.Generator().manual_seed(1000 * size + seed))
            correct = _evaluate(model, fc, prep, canvases, test_x, test_y)
            row[size] = {m: float(c.float().mean()) for m, c in correct.items()}
            for b, d in paired_difference(correct).items():
                diffs[size][b].append(d)
            shifts[size], bin_labels[size] = _by_shift(correct, corners, size)
            if seed == 0:
                heatmaps.append(_heatmap_example(fc, prep, ds.classes, canvases, corners, test_y, out_dir))
        per_seed.append(row)
        shift_runs.append(shifts)

    accuracy = {s: {m: mean_std([r[s][m] for r in per_seed]) for m in METHODS} for s in CANVASES}
    by_shift = {
        s: {
            m: [sum(r[s][m][b] for r in shift_runs) / seeds for b in range(len(bin_labels[s]))]
            for m in METHODS
        }
        for s in CANVASES
    }
    comparison = compare(accuracy, {s: {b: torch.cat(d) for b, d in v.items()} for s, v in diffs.items()})
    results = {
        "accuracy": accuracy,
        "comparison": comparison,
        "headline": headline(accuracy, comparison),
        "accuracy_by_shift": by_shift,
        "shift_bins_px": bin_labels,
        "per_seed": per_seed,
        "score_map": {s: list(score_map_size(fc, (1, s, s))) for s in CANVASES},
    }
    plot = _plot(accuracy, by_shift, bin_labels, seeds, out_dir)

    report = Report("Dense evaluation: VGG's fully convolutional test-time trick", get_experiment(NAME))
    report.para(
        f"`{MODEL}` trained on centred 28×28 Fashion-MNIST (shifts ±{SHIFT_PAD} px), then converted by "
        "`cnnzoo.convert.to_fully_convolutional` (FC over the 64×1×1 map -> 1×1 conv, FC -> 1×1 conv). "
        "Test items are pasted at random places on black canvases."
    )
    report.para(f"**{results['headline']}**")
    report.table(
        ["method"] + [f"{s}×{s} canvas" for s in CANVASES],
        [[METHODS[m]] + [pct_acc(accuracy[s][m]) for s in CANVASES] for m in METHODS],
    )
    report.image(plot, "accuracy per method, and against the item's distance from the canvas centre")
    for name in heatmaps:
        report.image(name, "posterior of the true class over a canvas whose item is far from the centre")
    report.table(
        ["dense evaluation + flip vs"] + [f"{s}×{s}: points (± s.e.)" for s in CANVASES],
        [
            [METHODS[b]]
            + [
                f"{100 * comparison[s][b]['delta']:+.2f} (± {100 * comparison[s][b]['se']:.2f}): "
                f"{comparison[s][b]['outcome']}"
                for s in CANVASES
            ]
            for b in BASELINES
        ],
    )
    if quick:
        report.para(
            f"Quick mode: {epochs} epochs on {limit} images and {n_test} canvases, to test the pipeline."
        )
    return finish(report, out_dir, NAME, settings, results, started, device)


def pct_acc(stats: dict) -> str:
    """``{"mean": 0.91, "std": 0.004, "n": 3}`` -> ``'91.00 ± 0.40%'``."""
    if stats.get("n", 1) > 1:
        return f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}%"
    return f"{100 * stats['mean']:.2f}%"
