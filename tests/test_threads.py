"""Fair CPU use under contention (cnnzoo.threads): the measurement sees a busy neighbour and the budget
gives its core back."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from cnnzoo.threads import CpuBudget, _Sample, usable_cores


@pytest.mark.parametrize(
    "cores,others,threads", [(2, 0.0, 2), (2, 0.3, 2), (2, 0.7, 1), (2, 1.0, 1), (2, 2.0, 1), (8, 2.9, 5)]
)
def test_choose_leaves_the_busy_cores(cores, others, threads):
    assert CpuBudget(cores=cores).choose(others) == threads


def test_others_busy_subtracts_our_own_time():
    b = CpuBudget(cores=2)
    b._last = _Sample(wall=0.0, system=10.0, own=3.0)
    # in 1 s the machine was busy 1.8 core-seconds, 0.9 of them ours: the others used 0.9 of a core
    assert b.others_busy(_Sample(wall=1.0, system=11.8, own=3.9)) == pytest.approx(0.9)


@pytest.mark.skipif(
    not os.path.exists("/proc/stat") or usable_cores() < 2, reason="needs /proc/stat, 2 cores"
)
def test_a_spinning_neighbour_is_seen_and_its_core_left_to_it():
    import torch

    before = torch.get_num_threads()
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        budget = CpuBudget()
        notice = budget.start(probe=0.5)
        assert budget.threads is not None and budget.threads <= budget.cores - 1
        assert torch.get_num_threads() == budget.threads
        assert notice is None or "other processes" in notice
    finally:
        spin.kill()
        spin.wait()
        torch.set_num_threads(before)


def test_requested_threads_are_kept():
    import torch

    before = torch.get_num_threads()
    try:
        budget = CpuBudget(requested=1)
        assert budget.start() is None and torch.get_num_threads() == 1 and budget.update() is None
    finally:
        torch.set_num_threads(before)
