"""The dense-evaluation experiment: canvas construction, and one quick run end to end (real Fashion-MNIST)."""

from __future__ import annotations

import json

import pytest
import torch

from cnnzoo.experiments import dense_evaluation as de


def test_make_canvases_pastes_each_item_once_at_its_corner():
    g = torch.Generator().manual_seed(0)
    items = torch.randint(1, 256, (50, 1, 28, 28), dtype=torch.uint8)  # no zeros: the item is findable
    canvases, corners = de.make_canvases(items, 42, g)
    assert canvases.shape == (50, 1, 42, 42) and canvases.dtype == torch.uint8
    for i, (r, c) in enumerate(corners.tolist()):
        assert 0 <= r <= 14 and 0 <= c <= 14
        assert torch.equal(canvases[i, :, r : r + 28, c : c + 28], items[i])
        assert int((canvases[i] > 0).sum()) == 28 * 28  # black everywhere else
    assert len(set(map(tuple, corners.tolist()))) > 40  # random places, not one fixed offset


def _data_available() -> bool:
    try:
        de.load_data("fashion-mnist")
    except Exception:  # noqa: BLE001 - any failure to find the files means: skip the end-to-end run
        return False
    return True


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    if not _data_available():
        pytest.skip("Fashion-MNIST files not found (cnnzoo.data.load_dataset)")
    out = tmp_path_factory.mktemp("dense")
    return out, de.run(out, quick=True, seeds=1, device="cpu")


@pytest.mark.slow
def test_quick_run_writes_report_plots_and_results(quick_run):
    out, doc = quick_run
    for name in ("report.md", "results.json", "dense_evaluation.png", "dense_evaluation_heatmap_42.png"):
        assert (out / name).is_file(), name
    assert (out / "dense_evaluation.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((out / "results.json").read_text())
    assert saved["experiment"] == "dense-evaluation" and saved["hardware"]["device"] == "cpu"
    assert "dense evaluation + flip (VGG)" in (out / "report.md").read_text()


def test_quick_run_numbers_are_plausible(quick_run):
    _, doc = quick_run
    res = doc["results"]
    # keras_mnist_cnn at stride 9: 42 -> 39 -> 13 -> 10 -> 3 and 56 -> 53 -> 17 -> 14 -> 4 positions.
    assert res["score_map"] == {42: [3, 3], 56: [4, 4]}
    for size in de.CANVASES:
        acc = res["accuracy"][size]
        assert set(acc) == set(de.METHODS)
        assert all(0.0 <= a["mean"] <= 1.0 for a in acc.values())
        # Two epochs on 8,000 images already classify centred items far above chance (10 classes).
        assert acc["centred_28"]["mean"] > 0.5
    # The ceiling does not depend on the canvas; fit's own test accuracy is on a different subset.
    assert res["accuracy"][42]["centred_28"]["mean"] == res["accuracy"][56]["centred_28"]["mean"]


def _accuracy(values: dict) -> dict:
    return {
        size: {m: {"mean": v / 100, "std": 0.0, "n": 1} for m, v in by.items()} for size, by in values.items()
    }


# docs/experiments.md's CPU run (8 epochs, 10,000 canvases); dense_noflip is not in the doc and made up here
DOC_RUN = {
    42: {
        "centred_28": 82.74,
        "dense": 80.38,
        "dense_noflip": 79.50,
        "dense_max": 67.50,
        "ten_crop": 81.08,
        "resize": 62.74,
        "centre_crop": 79.89,
    },
    56: {
        "centred_28": 82.74,
        "dense": 44.67,
        "dense_noflip": 43.90,
        "dense_max": 62.12,
        "ten_crop": 27.80,
        "resize": 28.95,
        "centre_crop": 48.32,
    },
}


def _diffs(spread: float) -> dict:
    """Paired per-image differences whose standard error is about spread / 100 (10,000 items)."""
    d = torch.tensor([spread, -spread] * 5000)
    return {size: {b: d for b in de.BASELINES} for size in de.CANVASES}


def test_headline_names_every_win_and_loss_at_every_size():
    acc = _accuracy(DOC_RUN)
    cmp = de.compare(acc, _diffs(0.01))  # standard error 0.0001: every difference here is real
    assert {b: cmp[42][b]["outcome"] for b in de.BASELINES} == {
        "dense_noflip": "wins",
        "dense_max": "wins",
        "ten_crop": "loses",
        "resize": "wins",
        "centre_crop": "wins",
    }
    assert cmp[56]["centre_crop"]["outcome"] == cmp[56]["dense_max"]["outcome"] == "loses"
    at42, at56 = de.headline(acc, cmp).split(" At 56×56")
    assert "loses to 10 crops (-0.70)" in at42 and "beats resizing (+17.64)" in at42
    assert "the best method there is 10 crops" in at42
    assert "loses to the max over positions (-17.45), the centre crop (-3.65)" in at56
    assert "beats resizing (+15.72), 10 crops (+16.87)" not in at56  # ordered by size of the difference
    assert "beats 10 crops (+16.87), resizing (+15.72)" in at56


def test_headline_calls_a_difference_within_two_standard_errors_a_tie():
    acc = _accuracy(DOC_RUN)
    cmp = de.compare(acc, _diffs(1.0))  # standard error 1 point: the 0.70 and 0.49 gaps are ties
    assert cmp[42]["ten_crop"]["outcome"] == cmp[42]["centre_crop"]["outcome"] == "tie"
    assert cmp[42]["resize"]["outcome"] == "wins"
    assert "ties with " in de.headline(acc, cmp).split(" At 56×56")[0]


def test_quick_run_headline_covers_every_baseline(quick_run):
    _, doc = quick_run
    res = doc["results"]
    for size in de.CANVASES:
        assert set(res["comparison"][size]) == set(de.BASELINES)
        for b, c in res["comparison"][size].items():
            delta = res["accuracy"][size]["dense"]["mean"] - res["accuracy"][size][b]["mean"]
            assert c["delta"] == pytest.approx(delta) and c["se"] > 0
    assert res["headline"].count("dense evaluation + flip (") == len(de.CANVASES)
