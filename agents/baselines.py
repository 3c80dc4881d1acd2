"""Simple baseline schedulers: random and workflow-agnostic Slurm-like FCFS."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from wass_env.scheduling import Scheduler
from wass_env.sim.plan import PlanBuilder

__all__ = ["RandomScheduler", "SlurmScheduler"]


class RandomScheduler(Scheduler):
    """Uniformly random feasible node (the masked random policy)."""

    name: ClassVar[str] = "random"

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """A uniformly random node among those the task fits on."""
        feasible = np.flatnonzero(builder.problem.fits[task])
        return int(feasible[self.rng.integers(feasible.size)])

    def act(self, obs: Any, mask: NDArray[np.bool_], env: Any) -> int:
        """A uniformly random action among those ``mask`` allows."""
        feasible = np.flatnonzero(mask)
        return int(feasible[self.rng.integers(feasible.size)])


class SlurmScheduler(Scheduler):
    """ "Traditional Slurm": workflow-agnostic first-come-first-served.

    Each task is submitted when its parents have finished and goes to the first node (lowest
    index) with enough free cores at that moment; if none has, to the node whose cores free up
    first. Where the task's input data lives plays no part (no data locality, no look-ahead);
    the transfers still cost time when the task runs.
    """

    name: ClassVar[str] = "slurm"
    task_order = "fifo"

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The node where ``task`` could start first, ignoring data transfers (ties: lowest)."""
        release = builder.release_time(task)
        ready = np.full(builder.problem.n_nodes, release)
        return int(np.argmin(builder.start_times(task, ready)))
