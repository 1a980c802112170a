"""One --device resolver for `cnnzoo train`, `cnnzoo experiment` and the API."""

from __future__ import annotations

import pytest
import torch
from helpers import synthetic

from cnnzoo.cli import main
from cnnzoo.device import resolve_device
from cnnzoo.errors import CnnzooError


def test_names_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    for bad in ("tpu", "gpu", "CPU"):
        with pytest.raises(CnnzooError, match="unknown device"):
            resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_one_line():
    with pytest.raises(CnnzooError, match="no CUDA GPU"):
        resolve_device("cuda:1")


def test_train_and_experiment_treat_mps_alike(tmp_path, capsys, monkeypatch):
    """Both commands accept or refuse --device mps through the one resolver, with the same message."""
    import cnnzoo.data

    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        pytest.skip("this machine has MPS: both commands would use it")
    monkeypatch.setattr(cnnzoo.data, "load_dataset", lambda name, data_dir=None: synthetic(64, 16))
    assert main(["train", "--device", "mps", "--epochs", "1", "--out", str(tmp_path / "t"), "--quiet"]) == 2
    train_err = capsys.readouterr().err.strip()
    assert main(["experiment", "bottleneck-1x1", "--device", "mps", "--out", str(tmp_path / "e")]) == 2
    experiment_err = capsys.readouterr().err.strip()
    assert "no Apple GPU (MPS)" in train_err
    assert train_err.split(": error: ")[1] == experiment_err.split(": error: ")[1]
