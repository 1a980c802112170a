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
