"""docs/notebooks/your-own-cnn.ipynb runs, top to bottom, in a Jupyter kernel (nbclient), and its outputs are the
notebook forms: HTML tables for the summary, the training history and the comparison. fit's progress in a kernel
is one live display per epoch whose saved form is the epoch's log line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "your-own-cnn.ipynb"


class _Client(NotebookClient):
    """nbclient's client, counting the kernel's display updates (a saved notebook keeps only the last)."""

    updates = 0

    def _update_display_id(self, display_id, msg):
        self.updates += msg["header"]["msg_type"] == "update_display_data"
        super()._update_display_id(display_id, msg)


def execute(nb, tmp_path: Path) -> _Client:
    """Run ``nb`` in a python3 Jupyter kernel started in ``tmp_path``; the kernel inherits PYTHONPATH."""
    client = _Client(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    return client


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Fashion-MNIST not here")
def test_your_own_cnn_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    execute(nb, tmp_path)
    outputs = [c.outputs for c in nb.cells if c.cell_type == "code"]
    html = [next((o["data"].get("text/html", "") for o in out if o.get("data")), "") for out in outputs]
    assert "101,578" in html[0]  # seed 004's count, by hand in the seed: 320 + 18,496 + 73,856 + 8,256 + 650
    assert "18,496" in str(outputs[1])  # conv2: (3·3·32 + 1)·64
    assert html[2].startswith("<table>") and "test accuracy" in html[2]
    assert "61,706" in html[3] and "101,578 (1.65×)" in html[3]


FIT = """import torch, cnnzoo
g = torch.Generator().manual_seed(0)
x = torch.rand(256, 1, 8, 8, generator=g)
y = (x.mean((1, 2, 3)) > 0.5).long()
net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
history = cnnzoo.fit(net, x, y, epochs=2, batch_size=8, validation_data=(x[:64], y[:64]), threads=1{})"""
LINE = re.compile(
    r"epoch +(\d)/(\d)  loss \d\.\d{4}  acc \d\.\d{4}  .*s  val_loss \d\.\d{4}  val_acc \d\.\d{4}$"
)


@pytest.mark.slow
@pytest.mark.parametrize("progress", ["", ', progress="rich"'])
def test_fit_in_a_notebook_keeps_one_readable_line_per_epoch(tmp_path, progress):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(FIT.format(progress))])
    client = execute(nb, tmp_path)
    nbformat.write(nb, tmp_path / "fit.ipynb")
    outputs = nbformat.read(tmp_path / "fit.ipynb", as_version=4).cells[0].outputs
    saved = json.dumps(outputs)
    assert "\\u001b" not in saved and "\\r" not in saved  # no ANSI escape, no carriage return
    lines = [o["data"]["text/plain"] for o in outputs if o["output_type"] == "display_data"]
    assert [LINE.match(line).groups() for line in lines] == [("1", "2"), ("2", "2")], lines
    assert len(outputs) <= 5  # the header and the two epochs, not a line per batch
    assert 2 <= client.updates < 2 * 32  # live, and throttled below one update per batch
