"""The experiments in --quick mode: each writes report.md, its PNG and results.json holding the numbers.

The analysis experiments must give the published figures exactly (the papers' counts, seed 000 and 001); the
training experiments run on a small subset of the real Fashion-MNIST (skipped where its files are absent),
so only their plumbing and the parameter counts (against the papers) are asserted, never their accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError, DataError
from cnnzoo.experiments import list_experiments, run_experiment, stats, training


def _have_fashion_mnist() -> bool:
    try:
        training.load_data("fashion-mnist")
        return True
    except CnnzooError:
        return False


def _outputs(out: Path, png: str) -> tuple[dict, str]:
    """results.json and report.md of a finished run; the report links the PNG, which exists and is a PNG."""
    doc = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"]({png})" in report
    assert doc["seconds"] > 0 and doc["hardware"]["device"] == "cpu" and doc["settings"]["quick"] is True
    return doc, report


EXPERIMENTS = [e.name for e in list_experiments()]
# the quick runs that take seconds stay in the fast lane; the others train several nets (-m slow)
FAST_QUICK_RUNS = ("bottleneck-1x1", "small-kernels")
_QUICK_RUNS: dict[str, tuple[Path, dict]] = {}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``quick_run(name)``: experiment ``name`` run once with --quick on the CPU (its out dir and results),
    shared by the tests of this module; skipped where the dataset it reads is not on this machine."""

    def run(name: str) -> tuple[Path, dict]:
        if name not in _QUICK_RUNS:
            out = tmp_path_factory.mktemp(name)
            try:
                _QUICK_RUNS[name] = (out, run_experiment(name, out, quick=True, device="cpu"))
            except DataError as e:
                pytest.skip(f"{name}: {e}")
        return _QUICK_RUNS[name]

    return run


def test_list_and_cli(capsys):
    """Each experiment module declares its name, source and claim once; the list and the CLI show them."""
    import importlib

    assert len(EXPERIMENTS) == len(set(EXPERIMENTS)) >= 6
    for e in list_experiments():
        module = importlib.import_module(f"cnnzoo.experiments.{e.module}")
        assert (module.NAME, module.SOURCE, module.CLAIM) == (e.name, e.source, e.claim)
    assert main(["experiment", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in EXPERIMENTS)


@pytest.mark.parametrize(
    "name", [n if n in FAST_QUICK_RUNS else pytest.param(n, marks=pytest.mark.slow) for n in EXPERIMENTS]
)
def test_every_experiment_runs_quick(name, quick_run):
    """The contract of every experiment: --quick writes results.json and report.md, which states the claim."""
    out, doc = quick_run(name)
    info = next(e for e in list_experiments() if e.name == name)
    assert json.loads((out / "results.json").read_text())["seconds"] == doc["seconds"] > 0
    assert doc["hardware"]["device"] == "cpu" and doc["settings"]["quick"] is True
    report = (out / "report.md").read_text()
    assert f"**Claim** ({info.source}): {info.claim}." in report
    assert any(p.suffix == ".png" for p in out.iterdir())


def test_unknown_experiment_and_bad_options_exit_2(tmp_path, capsys):
    assert main(["experiment", "degradaton", "--out", str(tmp_path)]) == 2
    assert "unknown experiment 'degradaton'" in capsys.readouterr().err
    # bottleneck-1x1 trains nothing: --epochs is refused in one line, before any work
    assert main(["experiment", "bottleneck-1x1", "--epochs", "3", "--out", str(tmp_path)]) == 2
    assert "does not take --epochs" in capsys.readouterr().err
    with pytest.raises(CnnzooError, match="seeds"):
        run_experiment("lrn", tmp_path, quick=True, seeds=0)
    assert main(["experiment", "bottleneck-1x1", "--device", "tpu", "--out", str(tmp_path)]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err
    if not torch.cuda.is_available():  # asking for a GPU that is not there: one line, exit 2
        assert main(["experiment", "bottleneck-1x1", "--device", "cuda", "--out", str(tmp_path)]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err


def test_bottleneck_1x1_gives_the_counts_and_times_every_layer(quick_run):
    doc, report = _outputs(quick_run("bottleneck-1x1")[0], "exp-bottleneck-1x1.png")
    r = doc["results"]
    # cnnzoo's arithmetic (Ng's lecture rounds it to ~120M vs ~2.4M + ~10.0M = ~12.4M multiplications)
    assert r["naive"]["macs"] == 120_422_400
    assert r["bottleneck"]["layer_macs"] == [2_408_448, 10_035_200]
    assert r["bottleneck"]["macs"] == 12_443_648
    assert (r["conv1x1"]["params"], r["conv1x1"]["macs"]) == (6_176, 4_816_896)
    assert r["conv1x1"]["output_shape"] == [32, 28, 28]
    assert r["mac_ratio"] == pytest.approx(120_422_400 / 12_443_648)
    assert r["claim_holds"] is True
    assert "120,422,400" in report and "12,443,648" in report and "6,176" in report
    # timed per layer over batch 1/8/64 on one and two threads, best-of and median of the same repeats
    assert sorted((row["threads"], row["batch"]) for row in r["timing"]) == [
        (t, b) for t in (1, 2) for b in (1, 8, 64)
    ]
    for row in r["timing"]:
        assert set(row["layers"]) == {"direct", "reduce", "conv5_16", "bottleneck", "conv1x1"}
        for key, t in row["layers"].items():
            assert 0 < t["min_ms"] <= t["median_ms"]
            assert t["gmac_per_s"] == pytest.approx(r["layer_macs"][key] * row["batch"] / t["min_ms"] / 1e6)
        assert row["speedup_min"] == pytest.approx(
            row["layers"]["direct"]["min_ms"] / row["layers"]["bottleneck"]["min_ms"]
        )
    assert r["layer_macs"]["reduce"] + r["layer_macs"]["conv5_16"] == r["layer_macs"]["bottleneck"]
    for t in ("1 thread:", "2 threads:"):
        assert any(line.startswith(t) and "batch 64" in line for line in r["conclusion"])
    assert "memory-bound" not in report  # the timings do not show why; the report must not claim it


def test_bottleneck_conclusion_names_the_slowest_layer_per_mac():
    from cnnzoo.experiments.bottleneck_1x1 import conclusion

    def row(threads, batch, rates):
        layers = {k: {"gmac_per_s": v} for k, v in rates.items()}
        return {
            "threads": threads,
            "batch": batch,
            "layers": layers,
            "speedup_min": 3.0,
            "speedup_median": 2.5,
        }

    rates = {"direct": 20.0, "reduce": 2.0, "conv5_16": 10.0, "bottleneck": 5.0, "conv1x1": 4.0}
    rows = [row(1, 1, {**rates, "direct": 1.0}), row(1, 64, rates), row(2, 64, rates)]
    lines = conclusion(rows, 9.68)
    assert lines[0] == (
        "1 thread: the bottleneck is faster than the direct 5×5 by batch 1: 3.00× (2.50× by medians), "
        "batch 64: 3.00× (2.50× by medians), against 9.68× fewer MACs."
    )
    assert "1×1 conv 192→16 (the reduce) in 2 of 3 settings" in lines[-1]
    assert "5×5 conv 192→32 (direct) in 1 of 3 settings" in lines[-1]


def test_bottleneck_macs_agree_with_fvcore():
    """A second, independent counter (fvcore counts one 'flop' per multiply-accumulate of a conv)."""
    fvcore = pytest.importorskip("fvcore.nn")
    from cnnzoo.experiments.bottleneck_1x1 import CASES, INPUT, build

    for case in CASES:
        model, _ = build(case)
        counted = fvcore.FlopCountAnalysis(model.eval(), torch.zeros(1, *INPUT))
        counted.unsupported_ops_warnings(False)
        counted.uncalled_modules_warnings(False)
        conv_macs = sum(v for k, v in counted.by_operator().items() if k == "conv")
        assert conv_macs == case.expected_macs


def test_small_kernels(quick_run):
    doc, report = _outputs(quick_run("small-kernels")[0], "exp-small-kernels.png")
    blocks = doc["results"]["blocks"]
    # seed 001: 2·3·3·C² = 18C² vs 25C²; 3·3·3·C² = 27C² vs 49C²; equal receptive fields 5 and 7
    assert [blocks[b]["params_per_c2"] for b in ("2×3×3", "1×5×5", "3×3×3", "1×7×7")] == [18, 25, 27, 49]
    assert [blocks[b]["receptive_field"] for b in ("2×3×3", "1×5×5", "3×3×3", "1×7×7")] == [5, 5, 7, 7]
    small5, small7 = doc["results"]["comparisons"]
    assert round(small5["fewer_params_pct"]) == 28 and round(small7["fewer_params_pct"]) == 45
    assert small5["same_receptive_field"] and small7["same_receptive_field"]
    assert "28.0% fewer" in report and "44.9% fewer" in report
    for net in doc["results"]["nets"].values():
        assert len(net["test_error_curve"]) == 1 and 0 <= net["final_test_error"]["mean"] <= 1


@pytest.mark.slow
def test_degradation_quick(quick_run):
    doc, report = _outputs(quick_run("degradation")[0], "exp-degradation-fashion-mnist.png")
    models = doc["results"]["fashion-mnist"]["models"]
    # He et al. Table 6: ResNet-20 269,722 and ResNet-56 853,018 params with 3 input channels; one channel
    # (Fashion-MNIST) saves the stem's 16·3·3·2 = 288 weights. Plain nets drop only parameter-free shortcuts.
    assert models["resnet20"]["params"] == models["plain20"]["params"] == 269_722 - 288
    assert models["resnet56"]["params"] == models["plain56"]["params"] == 853_018 - 288
    for m in models.values():
        assert len(m["train_error_curve"]) == len(m["test_error_curve"]) == 1
        assert 0 <= m["final_train_error"]["mean"] <= 1
    assert set(doc["results"]["fashion-mnist"]["verdict"]) >= {
        "claim_holds",
        "plain56_trains_worse_than_plain20",
    }
    assert "Verdict (fashion-mnist)" in report and "Quick mode" in report
    # 128 images, one epoch: every net is at chance (≈ 90% error), so the report gives no verdict
    assert doc["results"]["fashion-mnist"]["verdict"]["claim_holds"] is None
    assert "**Verdict (fashion-mnist):** inconclusive (at chance level" in report
    assert "claim shows" not in report and "does NOT show" not in report


@pytest.mark.slow
def test_lrn_quick(quick_run):
    doc, report = _outputs(quick_run("lrn")[0], "exp-lrn.png")
    models = doc["results"]["models"]
    assert models["vgg11"]["params"] == models["vgg11_lrn"]["params"]  # LRN has no parameters
    assert "**Verdict:** inconclusive (" in report  # chance level or one seed: no verdict, and says so
    assert doc["results"]["claim_holds"] is None


@pytest.mark.slow
def test_lenet_activations_quick(quick_run):
    doc, report = _outputs(quick_run("lenet-activations")[0], "exp-lenet-activations.png")
    res = doc["results"]
    runs = res["runs"]
    variants = sorted(f"{a}-{p}" for a in ("sigmoid", "tanh", "relu") for p in ("avg", "max"))
    assert sorted(runs) == sorted(res["best_lr"]) == sorted(res["sweep"]) == variants
    # seed 000: LeNet-5 as Ng draws it has 61,706 parameters, whatever the activation/pool
    assert {r["params"] for r in runs.values()} == {61_706}
    for v in variants:
        grid = res["sweep"][v]
        lrs = [g["lr"] for g in grid]  # every lr of the grid for every combination, more past an edge
        assert lrs == sorted(lrs) and set(res["learning_rates"]) <= set(lrs) <= set(
            res["learning_rates_tried"]
        )
        fitted = [g for g in grid if "diverged" not in g]
        # the best lr is the one with the lowest final training loss, and the compared run is that one
        best = min(fitted, key=lambda g: g["final_train_loss"]["mean"])
        assert res["best_lr"][v] == best["lr"]
        assert runs[v]["final_train_loss"] == best["final_train_loss"]
        assert f"| {v.split('-')[0]} | {v.split('-')[1]} | {best['lr']} |" in report
    assert "its own best learning rate" in report
    # one epoch on 2,048 images with one seed: no yes/no, each verdict says why
    for said in (
        "than sigmoid (lower epoch-1 loss, both poolings): inconclusive (",
        "ReLU ends lower than sigmoid: inconclusive (",
        "tanh in between: inconclusive (",
        "test error for: inconclusive (",
    ):
        assert said in report
    assert ": yes" not in report and ": NO" not in report


def test_lenet_sweep_extends_the_grid_past_an_edge_best():
    from cnnzoo.experiments.lenet_activations import _beyond_edge

    def grid(losses: dict):
        return [{"lr": lr, "final_train_loss": {"mean": v}} for lr, v in sorted(losses.items())]

    assert _beyond_edge(grid({0.1: 2.0, 0.3: 1.0, 0.9: 0.5})) == 2.7  # best at the top: try 3× more
    assert _beyond_edge(grid({0.01: 0.4, 0.03: 0.6})) == 0.00333333  # best at the bottom: 3× less
    assert _beyond_edge(grid({0.1: 2.0, 0.3: 1.0, 0.9: 1.5})) is None  # inside: done
    assert _beyond_edge(grid({2.7: 1.0, 8.1: 0.5})) is None  # 24.3 is past TrainConfig's lr limit of 10
    diverged_top = grid({0.1: 1.0, 0.3: 0.5}) + [{"lr": 0.9, "diverged": "the loss became nan"}]
    assert _beyond_edge(diverged_top) is None  # a diverged run above the best bounds it


def test_lenet_sweep_records_a_diverged_run_instead_of_crashing(monkeypatch):
    from cnnzoo.experiments import lenet_activations
    from cnnzoo.train import DivergedError

    def diverge(*args, **kwargs):
        raise DivergedError("the loss became nan at epoch 1, step 3")

    monkeypatch.setattr(lenet_activations, "train_job", diverge)
    out = lenet_activations.sweep_job({"activation": "relu", "pool": "max"}, None, "cpu", 0, None)
    assert out == {"diverged": "the loss became nan at epoch 1, step 3"}


def test_mean_std_and_augment():
    s = stats.mean_std([1.0, 2.0, 3.0])
    assert (s["mean"], s["std"], s["n"]) == (2.0, 1.0, 3)
    assert stats.mean_std([0.5])["std"] == 0.0
    # a crop of the 4-pixel-padded image, maybe flipped: a single bright pixel moves by at most 4 pixels
    from cnnzoo.card import ModelCard
    from cnnzoo.train import prepare_for

    cfg = training.train_config(training.TrainSettings(epochs=1), "cpu", seed=0)  # augment: pad-4 crop + flip
    # He et al. 2015 Sec. 4.2: plain momentum, every parameter decayed, /10 at 50% and 75%
    assert (
        not cfg.nesterov and cfg.decay_all and cfg.schedule == "milestones" and cfg.milestones == (0.5, 0.75)
    )
    x = torch.zeros(64, 1, 16, 16, dtype=torch.uint8)
    x[:, :, 8, 5] = 255
    prepare = prepare_for(ModelCard("t", input_size=(1, 16, 16)), cfg.crop_padding, cfg.hflip)
    y = prepare(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.all(y.sum((1, 2, 3)) <= 1)
    for img in y[y.sum((1, 2, 3)) == 1]:
        r, c = (img[0] == 1).nonzero()[0].tolist()
        assert abs(r - 8) <= 4 and (abs(c - 5) <= 4 or abs(c - (15 - 5)) <= 4)
    assert len({tuple((img[0] == 1).nonzero()[0].tolist()) for img in y if img.sum() == 1}) > 5  # per image


def test_degradation_rebuilt_from_a_stopped_runs_log(tmp_path):
    """The progress lines training.train_job prints are enough to write the report of a run cut short."""
    from cnnzoo.experiments.degradation import rebuild_from_log, settings_for

    final = {"plain20": 5.0, "plain56": 7.0, "resnet20": 4.5, "resnet56": 4.0}  # % at the last epoch
    lines = []
    for name, err in final.items():
        reached = 3 if name == "resnet56" else 4  # resnet56 was stopped one epoch early
        for seed, jitter in ((0, 0.0), (1, 0.1)):  # two seeds: one seed would give no verdict
            for e in range(1, reached + 1):
                lines.append(
                    f"  {name} seed {seed} epoch {e}/4: train error {err + 4 - e + jitter:.2f}%, "
                    f"test error {err + 5:.2f}% (1.0 s)"
                )
    log = tmp_path / "run.log"
    log.write_text("\n".join(["noise", *lines]) + "\n")
    doc = rebuild_from_log(log, tmp_path, settings_for(False, "fashion-mnist"), "cpu", {"device": "cuda"})
    r = doc["results"]["fashion-mnist"]
    assert all(len(m["train_error_curve"]) == 3 for m in r["models"].values())  # cut to the common 3 epochs
    assert r["models"]["plain56"]["final_train_error"]["mean"] == pytest.approx(
        (7 + 2 + 0.05) / 100
    )  # mean of 3,2,1 offsets, and of the two seeds' jitter
    assert r["verdict"]["claim_holds"] is True
    assert "Rebuilt from the progress log" in (tmp_path / "report.md").read_text()


def test_a_verdict_needs_numbers_that_can_carry_it():
    """Chance level, one seed, or a gap under two standard errors: inconclusive, with the reason."""

    def s(*v):
        return stats.mean_std(v)

    chance = stats.chance_error(10)
    assert chance == pytest.approx(0.9) and stats.chance_loss(10) == pytest.approx(2.302585)
    assert "at chance level" in stats.why_inconclusive([(s(0.88, 0.89), s(0.91, 0.90))], chance)
    assert "one seed" in stats.why_inconclusive([(s(0.05), s(0.07))], chance)
    assert "within the seed noise" in stats.why_inconclusive([(s(0.050, 0.060), s(0.056, 0.066))], chance)
    assert stats.why_inconclusive([(s(0.0714, 0.0705), s(0.0471, 0.0480))], chance) is None
    # one side at chance and the other not is a real difference (sigmoid stuck, ReLU learning)
    assert stats.why_inconclusive([(s(2.30, 2.29), s(1.0, 1.1))], stats.chance_loss(10)) is None
    # a claim of no difference is carried by a gap within the noise
    assert (
        stats.why_inconclusive([(s(0.05, 0.06), s(0.056, 0.066))], chance, claims_a_difference=False) is None
    )
    assert stats.verdict(True, None) == "yes" and stats.verdict(False, None) == "NO"
    assert stats.verdict(True, "one seed") == "inconclusive (one seed)"


def test_degradation_plot_shows_swings_above_20_percent(tmp_path, monkeypatch):
    """The top row autoscales (a plain-56 swing to 45% must be visible); the bottom row zooms on the end."""
    from cnnzoo.experiments import degradation

    shown = {}
    monkeypatch.setattr(
        degradation, "save_figure", lambda fig, out, name: shown.setdefault("fig", fig) and name
    )
    flat = [0.10, 0.08, 0.07, 0.06, 0.05, 0.05]
    swing = [0.30, 0.45, 0.12, 0.09, 0.072, 0.071]
    models = {
        m: {"train_error_curve": flat, "test_error_curve": swing if m == "plain56" else flat}
        for m in degradation.MODELS
    }
    degradation.plot({"models": models}, "fashion-mnist", tmp_path)
    top_left, top_right, bottom_left, _ = shown["fig"].axes
    assert top_left.get_ylim()[1] >= 45 and top_right.get_ylim() == top_left.get_ylim()
    lo, hi = bottom_left.get_ylim()
    assert 4 < lo < 5 and 9 < hi < 10  # the second half's values (5%..9%), not the early swing


def test_two_seeds_train_two_different_nets():
    """A "± 0.00" over two seeds must be a coincidence of the values, never one run counted twice: the seed
    changes the initial weights, the batch order and the augmentation."""
    from cnnzoo.experiments.degradation import build, per_seed, settings_for

    if not _have_fashion_mnist():
        pytest.skip("Fashion-MNIST files not on this machine")
    quick = settings_for(True, "fashion-mnist")
    a, b = (
        training.train_job(build, {"name": "resnet20", "in_channels": 1}, quick, "cpu", s) for s in (0, 1)
    )
    assert a["train_loss"] != b["train_loss"]
    agg = stats.aggregate([a, b])
    assert per_seed(agg["final_train_error"]).count("%") == 2
