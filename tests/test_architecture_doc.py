"""docs/architecture.md is the newcomer's map: its counts are the code's (Python files, models, families,
commands, experiments, TrainConfig options, figures), and every module and package of ``src/cnnzoo`` has
its place in the map."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from cnnzoo.experiments.table import list_experiments
from cnnzoo.models import get_model_info, list_models

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cnnzoo"
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def _count(pattern: str) -> int:
    found = re.search(pattern, DOC)
    assert found, f"docs/architecture.md no longer says {pattern!r}"
    return int(found.group(1))


def test_the_counts_are_the_codes():
    from cnnzoo.cli import _command_modules
    from cnnzoo.config import TrainConfig

    assert _count(r"checks it: (\d+) Python\s+files") == len(list(SRC.rglob("*.py")))
    assert _count(r"The zoo has (\d+) models") == len(list_models())
    assert _count(r"models in (\d+) families") == len({get_model_info(m).family for m in list_models()})
    assert _count(r"the CLI (\d+) commands") == len(list(_command_modules()))
    assert _count(r"the\s+experiments (\d+) claims") == len(list_experiments())
    assert _count(r"`TrainConfig` (\d+) options") == len(dataclasses.fields(TrainConfig))


def test_every_module_and_package_is_on_the_map():
    names = sorted(
        p.stem for p in SRC.iterdir() if not p.name.startswith("__") and (p.suffix == ".py" or p.is_dir())
    )
    missing = [n for n in names if not re.search(rf"(?<![\w.]){re.escape(n)}(\.py|/)?(?![\w])", DOC)]
    assert not missing, f"docs/architecture.md does not place {missing}"
