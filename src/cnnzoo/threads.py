"""Fair CPU use when other processes compete: as many threads as there are free cores, re-checked as we go.

Why: PyTorch starts one OpenMP thread per core, and every parallel region waits for its slowest thread. When
another process holds a core, the thread that shares it is descheduled for whole time slices and the rest
spin, waiting for it; measured on a 2-core machine, one busy neighbour cut training to 22% of its quiet
speed and two to 3.5% (one thread alone kept 54%).

- (Passive OpenMP waiting, ``OMP_WAIT_POLICY=PASSIVE``, was tried as a second remedy and dropped: it
  halved the quiet speed, 15-17k against 24.5-26.4k img/s, while the budget alone keeps 70%/50% with one
  and two neighbours; docs/benchmarks.md.)
- :class:`CpuBudget` measures how much CPU *other* processes used (``/proc/stat`` minus our own
  ``os.times()``) and sets ``torch.set_num_threads`` to the cores left free, at the start and then at every
  epoch, so the trainer takes the cores back when the neighbour ends.

On systems without ``/proc/stat`` (macOS, Windows) the budget keeps torch's default.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

__all__ = ["CpuBudget", "usable_cores"]


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. under taskset, cgroups or SLURM)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _system_busy_seconds() -> float | None:
    """CPU-seconds spent busy by the whole machine since boot (all cores), or None without /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            parts = f.readline().split()
    except OSError:
        return None
    if not parts or parts[0] != "cpu":
        return None
    ticks = [int(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class _Sample:
    wall: float
    system: float
    own: float


class CpuBudget:
    """Chooses the number of torch threads from the cores other processes leave free.

    ``CpuBudget(requested)``: ``requested`` is the user's ``--threads`` (then nothing is adapted) or None.
    :meth:`start` measures for ``probe`` seconds and sets the threads; :meth:`update` (once per epoch)
    measures over the time since the last call. Both return a one-line notice when they change the number
    of threads because of contention, else None."""

    def __init__(self, requested: int | None = None, cores: int | None = None) -> None:
        self.requested = requested
        self.cores = cores or usable_cores()
        self.threads: int | None = None
        self._last: _Sample | None = None

    def _sample(self) -> _Sample | None:
        system = _system_busy_seconds()
        return None if system is None else _Sample(time.monotonic(), system, _own_seconds())

    def others_busy(self, now: _Sample) -> float:
        """Cores used by other processes on average since the last sample."""
        last = self._last
        wall = max(now.wall - last.wall, 1e-6)
        others = (now.system - last.system) - (now.own - last.own)
        return min(float(self.cores), max(0.0, others / wall))

    def choose(self, others: float) -> int:
        """Free cores, rounded, at least one: a neighbour using 0.6 of a core counts as holding one."""
        free = self.cores - math.ceil(others - 0.35)
        return max(1, min(self.cores, free))

    def _apply(self, now: _Sample | None) -> str | None:
        import torch

        if self.requested is not None:
            torch.set_num_threads(self.requested)
            self.threads = self.requested
            return None
        if now is None or self._last is None:
            return None
        others = self.others_busy(now)
        self._last = now
        threads = self.choose(others)
        before = self.threads if self.threads is not None else torch.get_num_threads()
        self.threads = threads
        if threads == before:
            return None
        torch.set_num_threads(threads)
        if threads < self.cores:
            return (
                f"other processes are using {others:.1f} of {self.cores} cores: training with {threads} "
                f"thread{'s' if threads > 1 else ''} (--threads N overrides)"
            )
        return f"the other processes are gone: back to {threads} threads"

    def start(self, probe: float = 0.2) -> str | None:
        if self.requested is not None:
            return self._apply(None)
        self._last = self._sample()
        if self._last is None:
            return None
        time.sleep(probe)
        return self._apply(self._sample())

    def update(self) -> str | None:
        if self.requested is not None or self._last is None:
            return None
        return self._apply(self._sample())
