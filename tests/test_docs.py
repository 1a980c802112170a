"""Docs are tests: every `$ command` and every Python block in README.md and docs/*.md runs here.

A command's output is compared with what the doc shows (doctest's ELLIPSIS: `...` matches any text); a
command whose output the doc does not show must exit 0, or the status its comment names. Python blocks run
with sybil, `>>>` blocks as doctests. How commands are adapted to this machine, and which cannot run here, is
in docs_support/session.py; pytest lists every skip with its reason (-ra).

    CNNZOO_DOCS_UPDATE=1 .venv/bin/python -m pytest -p no:xdist tests/test_docs.py

rewrites the documented outputs that no longer match, in place (see docs/contributing.md).
"""

from __future__ import annotations

import os
import re
import unittest
from pathlib import Path

import pytest
from docs_support.console import Command, ConsoleParser
from docs_support.session import REPO, RUN_PLACEHOLDER, DocSession
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser

import cnnzoo

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# the docs that tests/test_docs_guides.py runs: a second module, so that xdist's two workers share the docs
# (--dist loadfile keeps each module, so each doc, whole and in order on one worker)
GUIDES = {"tutorial.md", "tutorial.zh.md", "layer-strings.md", "layer-strings.zh.md", "models.md", "web.md",
          "weights.md", "training.md", "experiments.md", "keras.md", "keras.zh.md"}  # fmt: skip
UPDATE = os.environ.get("CNNZOO_DOCS_UPDATE") == "1"

# Python blocks that cannot run here, keyed by doc and a text in the block.
LEFT_TO_READER = "uses {}, which the doc leaves to the reader"
PYTHON_SKIPS = {
    ("training.md", "uint8_images"): LEFT_TO_READER.format("`uint8_images`"),
    ("export.md", "runs/lenet5-fashion"): LEFT_TO_READER.format("a run directory and photos"),
    ("fully-convolutional.md", "dense_predict(fc, images"): LEFT_TO_READER.format("`images`"),
    (
        "weights.md",
        'weights.fetch("resnet50:v2")',
    ): "downloads torchvision's weights; the tests have no network",
    ("models.md", 'weights="imagenet"'): "downloads torchvision's weights; the tests have no network",
    ("training.md", 'weights="imagenet"'): "downloads torchvision's weights; the tests have no network",
    ("keras.md", "import tensorflow"): "Keras's side, shown beside its twin: there is no TensorFlow here",
    ("keras.zh.md", "import tensorflow"): "Keras's side, shown beside its twin: there is no TensorFlow here",
}
# The fit() calls in the docs train for 12 epochs on all of Fashion-MNIST; here they are smoke runs.
FIT_SHORTENING = {"epochs": 1, "limit": 2000}

_session: DocSession | None = None


def _evaluate(example):
    assert _session is not None, "the docs session fixture did not start"
    return _session.evaluate(example)


PARSER = Sybil(parsers=[ConsoleParser(_evaluate), PythonCodeBlockParser()])


# Examples that train (a command or a Python block), run an experiment, serve, export, predict, evaluate,
# fetch weights or need a trained run take 3-40 s each here: the full suite runs them, the fast lane
# (-m "not slow") the rest of every doc (the analyzer's tables, the explanations, the Python examples).
SLOW = re.compile(
    r"\bcnnzoo (train|experiment (?!list\b)|serve|export|predict|eval|weights (fetch|import))\b|--nproc|"
    r"\bfit\(|" + RUN_PLACEHOLDER.pattern
)


def _examples(docs):
    for path in docs:
        document = PARSER.parse(path)
        for example in document.examples():
            code = str(getattr(example.parsed, "code", example.parsed))  # a command, or a Python block's text
            # Each documented command is a new process that imports torch (about 2.5 s here): the fast lane runs
            # README's commands and every doc's Python blocks (in this process); the full suite runs them all.
            slow = SLOW.search(code) or (path.name != "README.md" and isinstance(example.parsed, Command))
            marks = [pytest.mark.slow] if slow else []
            yield pytest.param(example, id=f"{path.relative_to(REPO)}:{example.line}", marks=marks)


@pytest.fixture(scope="module", autouse=True)
def docs_session(tmp_path_factory):
    global _session
    _session = DocSession(tmp_path_factory.mktemp("docs"), update=UPDATE)
    yield _session
    if UPDATE:
        for path in _session.write_rewrites():
            print(f"rewrote the documented outputs in {path}")
    _session = None


def _shortened(fit):
    def fit_briefly(model, *data, **options):
        return fit(model, *data, **{**options, **FIT_SHORTENING})

    return fit_briefly


def make_test_doc(docs):
    """The docs test over the examples of ``docs``. The docs run in order, one scratch folder per test
    process: a placeholder such as RUN refers to a run trained earlier (or, where xdist sent that training to
    another worker, trained for it)."""

    @pytest.mark.parametrize("example", list(_examples(docs)))
    def test_doc(example, docs_session, monkeypatch):
        name = Path(example.path).name
        for (doc, marker), reason in PYTHON_SKIPS.items():
            if name == doc and marker in str(example.parsed):
                pytest.skip(reason)
        monkeypatch.chdir(docs_session.workdir)
        monkeypatch.setattr(cnnzoo, "fit", _shortened(cnnzoo.fit))
        try:
            example.evaluate()
        except unittest.SkipTest as skip:
            pytest.skip(str(skip))

    return test_doc


test_doc = make_test_doc([d for d in DOCS if d.name not in GUIDES])


# -- the machinery itself, on a small doc of shell commands --------------------------------------------------
SAMPLE = """\
```console
$ echo 60,000 params   # a count
60,000 params
$ python -c "print('a')
print('b')"
a
b
$ echo took 1.5 s
took ... s
$ exit 2    # exits with status 2
$ echo ok
```

```console
$ printf '| a |\\n|---|\\n| 1 |\\n'
```

<!-- output -->
| a |
|---|
| 1 |
<!-- /output -->
"""


def _sample(tmp_path, text=SAMPLE):
    path = tmp_path / "sample.md"
    path.write_text(text, encoding="utf-8")
    return path, [example for example in PARSER.parse(path).examples()]


def test_console_blocks_are_split_into_commands_with_their_outputs(tmp_path):
    _, examples = _sample(tmp_path)
    commands = [e.parsed for e in examples]
    assert [c.code for c in commands] == [
        "echo 60,000 params",
        "python -c \"print('a')\nprint('b')\"",
        "echo took 1.5 s",
        "exit 2",
        "echo ok",
        "printf '| a |\\n|---|\\n| 1 |\\n'",
    ]
    assert [c.exit_status for c in commands] == [0, 0, 0, 2, 0, 0]
    assert commands[1].expected == "a\nb\n" and commands[4].expected == ""
    assert commands[5].markdown and commands[5].expected == "| a |\n|---|\n| 1 |\n"


def test_outputs_are_exact_except_for_the_ellipsis():
    from docs_support.console import output_matches

    assert output_matches("took ... s", "took 12.5 s\n")
    assert output_matches("a\n...\nz", "a\nb\nc\nz  \n\n")
    assert not output_matches("60,000 params", "60,001 params")
    assert not output_matches("6×28×28", "6×28×…")


def test_a_changed_output_fails_and_update_mode_rewrites_it(tmp_path):
    path, _ = _sample(tmp_path, SAMPLE.replace("60,000 params\n$ python", "59,999 params\n$ python"))
    _, examples = _sample(tmp_path, path.read_text(encoding="utf-8"))
    work = tmp_path / "work"
    work.mkdir()
    session = DocSession(work, update=False)
    results = [session.evaluate(e) for e in examples]
    assert results[0] and "59,999 params" in results[0] and results[1:] == [None] * 5

    work2 = tmp_path / "work2"
    work2.mkdir()
    updating = DocSession(work2, update=True)
    assert all(updating.evaluate(e) is None for e in examples)
    assert updating.write_rewrites() == [str(path)]
    assert path.read_text(encoding="utf-8") == SAMPLE
