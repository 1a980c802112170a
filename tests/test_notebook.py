"""docs/notebooks/your-own-cnn.ipynb runs, top to bottom, in a Jupyter kernel (nbclient), and its outputs are the
notebook forms: HTML tables for the summary, the training history and the comparison."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "your-own-cnn.ipynb"


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Fashion-MNIST not here")
def test_your_own_cnn_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [c.outputs for c in nb.cells if c.cell_type == "code"]
    html = [next((o["data"].get("text/html", "") for o in out if o.get("data")), "") for out in outputs]
    assert "101,578" in html[0]  # seed 004's count, by hand in the seed: 320 + 18,496 + 73,856 + 8,256 + 650
    assert "18,496" in str(outputs[1])  # conv2: (3·3·32 + 1)·64
    assert html[2].startswith("<table>") and "test accuracy" in html[2]
    assert "61,706" in html[3] and "101,578 (1.65×)" in html[3]
