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
