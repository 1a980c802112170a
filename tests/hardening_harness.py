"""A good checkpoint for the hardening tests to damage or serve (``root``, ``good_run``, module-scoped),
and their check of a refusal: exit 2, one ``cnnzoo COMMAND: error:`` line holding the given words, no
traceback (warnings aside)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_harness import MODEL, _meta  # noqa: F401 (re-exported to the hardening tests)

import cnnzoo
from cnnzoo import checkpoint as ckpt


@pytest.fixture(scope="module", name="root")
def root_fixture(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hardening")


@pytest.fixture(scope="module", name="good_run")
def good_run_fixture(root) -> Path:
    torch.manual_seed(0)
    return ckpt.save_checkpoint(root / "good", cnnzoo.create_model(MODEL), _meta())


def assert_one_line(code: int, err: str, command: str, *words: str) -> None:
    assert "Traceback" not in err, err
    assert code == 2, f"exit {code}: {err}"
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning")]
    assert len(lines) == 1 and lines[0].startswith(f"cnnzoo {command}: error:"), err
    for word in words:
        assert word in lines[0], (word, lines[0])
