"""Which ready task is placed next.

List schedulers (and the environment) place ready tasks one at a time in priority order.
:class:`ReadyQueue` follows a :class:`~wass_env.sim.plan.PlanBuilder` and yields the ready task
with the highest priority, ties by lowest index.
"""

from __future__ import annotations

import heapq

import numpy as np
from numpy.typing import NDArray

from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["TASK_ORDERS", "ReadyQueue", "task_priority"]

#: Names accepted by :func:`task_priority`.
TASK_ORDERS = ("rank", "fifo")


def task_priority(problem: Problem, order: str = "rank") -> NDArray[np.float64]:
    """Priority of every task (higher goes first).

    Args:
        problem: The problem.
        order: ``"rank"``: HEFT's upward rank (mean runtime plus mean communication to the exit);
            ``"fifo"``: task index (the order of the workflow file), first come first served.
    """
    if order == "rank":
        return problem.upward_rank()
    if order == "fifo":
        return -np.arange(problem.n_tasks, dtype=np.float64)
    raise ValueError(f"unknown task order {order!r}; expected one of {TASK_ORDERS}")


class ReadyQueue:
    """Ready tasks of a builder, highest priority first.

    Call :meth:`pop` for the next task, place it with the builder, then call :meth:`update` so the
    tasks that placement made ready join the queue.
    """

    def __init__(self, builder: PlanBuilder, priority: NDArray[np.float64]) -> None:
        self._key = (-np.asarray(priority, dtype=np.float64)).tolist()
        self._heap: list[tuple[float, int]] = []
        self.builder = builder
        for t in sorted(builder.ready):
            heapq.heappush(self._heap, (self._key[t], t))

    def __len__(self) -> int:
        return len(self._heap)

    def peek(self) -> int:
        """The next task, without removing it."""
        return self._heap[0][1]

    def pop(self) -> int:
        """Remove and return the next task."""
        return heapq.heappop(self._heap)[1]

    def update(self) -> None:
        """Add the tasks the builder's last placement made ready."""
        for t in self.builder.newly_ready:
            heapq.heappush(self._heap, (self._key[t], t))
