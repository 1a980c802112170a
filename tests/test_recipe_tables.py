"""The recipe-search tables in docs/training.md are what benchmarks/recipe_search.jsonl says.

The runs take hours, so the tests do not repeat them; they check that every table row in the doc is the
script's own ``--report`` of the recorded results, so a new result (or a hand edit) cannot leave the doc behind.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "recipe_search.py"


def _script():
    spec = importlib.util.spec_from_file_location("recipe_search", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SEARCH = _script()


@pytest.mark.parametrize("model", sorted(SEARCH.SEARCHES))
def test_docs_table_is_the_report_of_the_results(model):
    table = SEARCH.report(SEARCH.load_results(SEARCH.RESULTS), model)
    doc = (REPO / "docs" / "training.md").read_text()
    assert len(table.splitlines()) > 2, f"no recorded results for {model}"
    assert table in doc, (
        f"docs/training.md's {model} table differs from `benchmarks/recipe_search.py --report`: paste the report"
    )


def test_every_recorded_candidate_is_still_defined():
    """A result whose candidate was renamed or deleted would drop out of the report, and so of the doc."""
    rows = SEARCH.load_results(SEARCH.RESULTS)
    for row in rows:
        assert row["candidate"] in SEARCH.SEARCHES[SEARCH.model_of(row)][1], row["candidate"]


# (recipe name, model) -> the candidate whose measured rows docs/training.md cites for it
SHIPPED = {
    ("default", "lenet5_modern"): "muon6_f_ls2_lr01_bs128",
    ("default", "lenet5"): "l10_lin_full_nf",
    ("fast", "resnet20"): "r5_full_ls_nf",
    ("fast", "vgg11"): "vm3_conv",
}


@pytest.mark.parametrize(("recipe", "model"), sorted(SHIPPED))
def test_the_shipped_recipe_is_the_one_measured(recipe, model):
    """`cnnzoo train MODEL [--recipe NAME]` trains with exactly the settings of the search's candidate."""
    from cnnzoo.config import TrainConfig
    from cnnzoo.data import dataset_facts
    from cnnzoo.train.recipes import recipe_for

    options, _ = SEARCH.SEARCHES[model][1][SHIPPED[recipe, model]]
    shipped = recipe_for(model, recipe)
    if shipped.get("hflip", False) is None:  # the dataset decides: the search ran on Fashion-MNIST
        shipped["hflip"] = dataset_facts("fashion-mnist").mirroring
    assert TrainConfig(**shipped) == TrainConfig(**options)
    rows = [r for r in SEARCH.load_results(SEARCH.RESULTS) if r["candidate"] == SHIPPED[recipe, model]]
    assert len({r["seed"] for r in rows}) >= 5, "a shipped recipe is judged over at least 5 seeds"


def test_every_named_recipe_was_measured():
    from cnnzoo.train.recipes import NAMED_RECIPES

    measured = {pair for pair in SHIPPED if pair[0] != "default"}
    named = {
        (recipe, model) for recipe, models in NAMED_RECIPES.items() for model in models if recipe != "paper"
    }
    assert named == measured  # the paper recipe is LeCun et al.'s, tested in test_lenet1998.py
