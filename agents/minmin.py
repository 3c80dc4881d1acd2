"""Min-Min and Max-Min: dynamic batch heuristics over the ready tasks.

At every step, for each ready task take its best node (earliest finish time, ties: lowest index)
and that finish time; Min-Min places the task whose best finish is the smallest, Max-Min the one
whose best finish is the largest (ties: lowest task index), on its best node. Min-Min favours
short tasks and keeps nodes busy; Max-Min starts long tasks early so that short ones fill in.

Both choose their own task order, so they override :meth:`~wass_env.scheduling.Scheduler.plan`. In
step-wise use the environment chooses the task, and they only choose its node: the earliest
finish, exactly as inside :meth:`plan`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from agents.heuristics import TIE_RTOL, argmin_first, min_eft_node
from wass_env.scheduling import Scheduler
from wass_env.sim.plan import Plan, PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["MaxMinScheduler", "MinMinScheduler"]


class MinMinScheduler(Scheduler):
    """Min-Min: repeatedly place the ready task that can finish first, on that node."""

    name: ClassVar[str] = "min_min"
    #: Pick the ready task with the smallest best finish (True) or the largest (False).
    smallest: ClassVar[bool] = True

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The node with the earliest finish time for ``task``; ties: lowest index."""
        return min_eft_node(builder, task)

    def plan(self, problem: Problem, *, insertion: bool = True) -> Plan:
        """Place all tasks, each time the ready task with the smallest (largest) best finish.

        Args:
            problem: The problem to schedule.
            insertion: Insertion policy of the plan builder.
        """
        self._ensure(problem)
        b = PlanBuilder(problem, insertion=insertion)
        exec_time = problem.exec_time
        drt: dict[int, NDArray[np.float64]] = {}  # data-ready time per node, fixed once ready
        eft: dict[int, NDArray[np.float64]] = {}  # earliest finish per node [s]
        for t in sorted(b.ready):
            drt[t] = b.data_ready(t).copy()
            eft[t] = b.start_times(t, drt[t]) + exec_time[t]
        while not b.done:
            tasks = sorted(eft)
            best = np.array([float(eft[t].min()) for t in tasks])  # [s]
            key = best if self.smallest else -best
            m = float(key.min())
            pick = tasks[int(np.argmax(key <= m + TIE_RTOL * max(abs(m), 1.0)))]
            b.assign(pick, argmin_first(eft.pop(pick)))
            del drt[pick]
            # Only the chosen node's occupancy changed: the other ready tasks keep their data-
            # ready times and get new start times (all nodes at once, vectorised).
            for t in eft:
                eft[t] = b.start_times(t, drt[t]) + exec_time[t]
            for t in b.newly_ready:
                drt[t] = b.data_ready(t).copy()
                eft[t] = b.start_times(t, drt[t]) + exec_time[t]
        return b.plan()


class MaxMinScheduler(MinMinScheduler):
    """Max-Min: repeatedly place the ready task whose best finish is the latest, on that node."""

    name: ClassVar[str] = "max_min"
    smallest: ClassVar[bool] = False
