"""The one scheduler interface every policy implements.

A :class:`Scheduler` can be used two ways:

* **whole-workflow**: ``plan(problem)`` returns a complete :class:`~wass_env.sim.plan.Plan`;
* **step-wise** inside ``WassSched-v0``: ``act(obs, mask, env)`` returns the node for the task the
  environment is asking about (the environment decides which ready task comes next).

List schedulers only implement :meth:`Scheduler.select_node`; the base class turns it into both
uses. Schedulers with their own static task ranking (HEFT, CPOP, PEFT) override
:meth:`Scheduler.priority`; those that choose the next task dynamically (Min-Min, Max-Min) override
:meth:`Scheduler.plan`.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from wass_env.sim.ordering import ReadyQueue, task_priority
from wass_env.sim.plan import Plan, PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["Scheduler", "env_core"]


def env_core(env: Any) -> Any:
    """The innermost ``WassSchedEnv`` under any wrappers."""
    return getattr(env, "unwrapped", env)


class Scheduler(abc.ABC):
    """Base class of all schedulers.

    Args:
        seed: Seed of the scheduler's own random generator (used by randomised policies).

    Attributes:
        name: Short name used in tables and configs.
        task_order: Priority rule for the next ready task in :meth:`plan` (see
            :func:`wass_env.sim.ordering.task_priority`).
    """

    name: ClassVar[str] = "scheduler"
    task_order: str = "rank"

    def __init__(self, seed: int | None = None) -> None:
        self._problem: Problem | None = None
        self.reset(seed)

    # ------------------------------------------------------------------ life cycle
    def reset(self, seed: int | None = None) -> None:
        """Re-seed the scheduler's random generator and forget per-problem state."""
        self.rng = np.random.default_rng(seed)
        self._problem = None

    def begin(self, problem: Problem) -> None:
        """Hook called once per problem before its first decision (precompute ranks here)."""

    def _ensure(self, problem: Problem) -> None:
        if problem is not self._problem:
            self._problem = problem
            self.begin(problem)

    # ------------------------------------------------------------------ decisions
    @abc.abstractmethod
    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """Node for ready ``task``, given the partial plan in ``builder``."""

    def act(self, obs: Any, mask: NDArray[np.bool_], env: Any) -> int:
        """Step-wise use: the node for the task ``env`` currently asks about.

        Args:
            obs: The observation (unused by heuristics, which read the simulator state).
            mask: Feasible nodes (bool, padded to the action space size).
            env: The environment (wrapped or not).
        """
        core = env_core(env)
        self._ensure(core.problem)
        return self.select_node(core.builder, core.current_task)

    def priority(self, problem: Problem) -> NDArray[np.float64]:
        """Priority of every task in :meth:`plan`: among ready tasks, the highest goes first.

        The default follows :attr:`task_order`; list schedulers with their own ranking (CPOP,
        PEFT, ...) override this instead of :meth:`plan`.
        """
        return task_priority(problem, self.task_order)

    def plan(self, problem: Problem, *, insertion: bool = True) -> Plan:
        """Whole-workflow use: place every task, highest-priority ready task first.

        Args:
            problem: The problem to schedule.
            insertion: Insertion policy of the plan builder (see :mod:`wass_env.sim.plan`).
        """
        self._ensure(problem)
        builder = PlanBuilder(problem, insertion=insertion)
        queue = ReadyQueue(builder, self.priority(problem))
        while not builder.done:
            task = queue.pop()
            builder.assign(task, self.select_node(builder, task))
            queue.update()
        return builder.plan()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
