"""Which ready task is placed next.

List schedulers (and the environment) place ready tasks one at a time in priority order.
:class:`ReadyQueue` follows a :class:`~wass_env.sim.plan.PlanBuilder` and yields the ready task
with the highest priority, ties by lowest index.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from numpy.typing import NDArray

from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = [
    "TASK_ORDERS",
    "TIE_RTOL",
    "ReadyQueue",
    "argmin_first",
    "snap_priority",
    "task_priority",
]

#: Relative tolerance under which two finish times (or two priorities) count as a tie.
TIE_RTOL = 1e-9


def argmin_first(values: NDArray[np.float64], rtol: float = TIE_RTOL) -> int:
    """Lowest index whose value is within ``rtol`` (relative) of the minimum.

    Args:
        values: Finite values, or ``inf`` for excluded entries (at least one finite).
        rtol: The tolerance (default :data:`TIE_RTOL`).

    Raises:
        ValueError: if every value is ``inf`` or NaN (nothing to choose from).
    """
    values = np.asarray(values)
    m = float(values.min())
    if not math.isfinite(m):
        raise ValueError(f"no finite value to choose from (minimum is {m})")
    return int((values <= m + rtol * max(abs(m), 1.0)).argmax())


def snap_priority(priority: NDArray[np.float64]) -> NDArray[np.float64]:
    """Priorities rounded to a grid of :data:`TIE_RTOL` times their largest magnitude.

    Values that differ only by rounding noise become exactly equal, so the ready queue breaks
    their tie by task index; the order of values that really differ is unchanged.
    """
    p = np.asarray(priority, dtype=np.float64)
    scale = float(np.max(np.abs(p))) if p.size else 0.0
    if scale == 0.0 or not np.isfinite(scale):
        return p.copy()
    step = scale * TIE_RTOL
    return np.round(p / step) * step  # type: ignore[no-any-return]


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
