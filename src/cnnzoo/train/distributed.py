"""Distributed data parallel (DDP) helpers: one process per core group or GPU, started by ``torchrun``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`setup` reads them and joins the process group (gloo on CPU, NCCL on CUDA). Without them everything
here is a no-op, so the engine has one code path for one process and for many.

Data: every rank computes the same permutation of the epoch (same seed), and each *global* batch of
``batch_size`` images is split ``batch[rank::world_size]``: rank r gets a disjoint ``batch_size /
world_size`` shard. DDP averages the gradients over ranks, which equals the gradient of the global batch's
mean loss, so N processes take exactly the steps one process would take with the same global batch.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import CnnzooError

__all__ = ["DistInfo", "setup", "cleanup", "all_reduce_sum", "shard", "torchrun_command"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device_type: str = "cpu") -> DistInfo:
    """Join the process group torchrun describes in the environment; a single process returns rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over ranks, in place (a no-op for one process)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank (e.g. the output directory name, which has a timestamp)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(indices: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's disjoint part of a global batch (or of an evaluation set)."""
    return indices[info.rank :: info.world_size] if info.enabled else indices


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """``torchrun --standalone --nproc_per_node=N -m cnnzoo ARGV`` on this machine (the ``--nproc`` option)."""
    if nproc < 1:
        raise CnnzooError(f"--nproc must be at least 1, not {nproc}")
    exe = shutil.which("torchrun")
    launcher = [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]
    return [*launcher, "--standalone", f"--nproc_per_node={nproc}", "-m", "cnnzoo", *argv]
