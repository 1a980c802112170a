"""DDP with real torchrun on loopback (gloo, 2 CPU processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import fashion_available

import cnnzoo
from cnnzoo.config import TrainConfig
from cnnzoo.train import make_prepare, train_one_epoch
from cnnzoo.train.optim import make_optimizer

# One global batch of 64 on 2 ranks (32 each) must give the parameters one process gets with the whole 64.
STEP_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    import cnnzoo
    from cnnzoo.train import distributed as ddp, make_prepare, train_one_epoch
    from cnnzoo.config import TrainConfig
    from cnnzoo.train.optim import make_optimizer
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    info = ddp.setup("cpu")
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5_modern")
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (64, 1, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (64,), generator=g)
    opt = make_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, weight_decay=5e-4))
    net = DistributedDataParallel(model)
    train_one_epoch(net, x, y, torch.arange(64), batch_size=64, optimizer=opt, info=info,
                    loss_fn=torch.nn.functional.cross_entropy, prepare=make_prepare((1, 28, 28), [0.5], [0.25]))
    if info.is_main:
        torch.save({k: v.detach() for k, v in model.state_dict().items()}, sys.argv[1])
    ddp.cleanup()
    """
)


def _torchrun(args, timeout=240, **kw):
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, **kw)


def test_one_ddp_step_equals_one_process_with_the_global_batch(tmp_path):
    script = tmp_path / "step.py"
    script.write_text(STEP_SCRIPT)
    done = _torchrun([str(script), str(tmp_path / "ddp.pt")])
    assert done.returncode == 0, done.stderr[-2000:]
    ddp_params = torch.load(tmp_path / "ddp.pt", weights_only=True)

    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5_modern")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (64, 1, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (64,), generator=g)
    opt = make_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, weight_decay=5e-4))
    train_one_epoch(
        model,
        x,
        y,
        torch.arange(64),
        batch_size=64,
        optimizer=opt,
        loss_fn=torch.nn.functional.cross_entropy,
        prepare=make_prepare((1, 28, 28), [0.5], [0.25]),
    )
    for k, v in model.state_dict().items():
        assert not torch.equal(v, before[k]), f"{k} did not move: the comparison would be vacuous"
        torch.testing.assert_close(ddp_params[k], v, atol=1e-6, rtol=0)


@pytest.mark.slow
@pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST files not found")
def test_cli_nproc_2_writes_result_with_world_size_2(tmp_path):
    out = tmp_path / "run"
    fixed = (
        "-m cnnzoo train lenet5_modern --nproc 2 --limit 512 --epochs 2 "
        "--batch-size 64 --validation-split 0.1 --quiet --threads 1"
    ).split()
    cmd = [sys.executable, *fixed, "--out", str(out)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=240, env=os.environ | {"OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2 and result["epochs"] == 2
    assert result["test_accuracy"] is not None and 0 <= result["test_accuracy"] <= 1
    # each rank saw half of every batch: 7 steps x 64 images per epoch in all (460 train images after the 10% split)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["images"] for r in lines] == [7 * 64, 7 * 64]
    # resume works distributed too: extend to 3 epochs
    cmd[cmd.index("--epochs") + 1] = "3"
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["epochs"] == 3 and result["world_size"] == 2
