"""Graceful degradation for any scheduler: a node it cannot use falls back to HEFT's choice.

:class:`FallbackScheduler` wraps a scheduler (a heuristic, a learned policy, anything registered)
and checks every node it chooses. A choice that is not a node of the cluster, or a node the task
does not fit on (too few cores, too little memory, or the node is marked down), is replaced by
the fallback scheduler's choice (HEFT's: the earliest finish time among the nodes the task fits
on), and the decision is recorded with the reason. A deployed plan therefore never sends a task
to a node that cannot run it, whatever the wrapped scheduler does, and says where it overrode it.

The wrapper also records what every decision saw (each node's earliest start and finish for the
task at that moment), which is what ``wass plan --explain`` reports.

How it drives the wrapped scheduler:

* a list scheduler (one that only chooses nodes: HEFT, PEFT, ...) is run decision by decision in
  its own task order, and each node it picks is checked before it is placed;
* a scheduler with its own :meth:`~wass_env.scheduling.Scheduler.plan` (Min-Min, CP-SAT, a
  trained policy) plans first; its plan is then replayed in its placement order, node by node,
  with the same check. If its own planning fails on a node it cannot use (a
  :class:`~wass_env.sim.plan.PlanError`), it is driven decision by decision like a list
  scheduler instead, its task priority and :meth:`select_node` checked as above.

Example::

    safe = FallbackScheduler("peft")
    plan = safe.plan(problem)
    overridden = [d for d in safe.decisions if d.fallback]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from wass_env.scheduling import Scheduler, env_core, make_scheduler
from wass_env.sim.cluster import GIB
from wass_env.sim.ordering import ReadyQueue
from wass_env.sim.plan import Plan, PlanBuilder, PlanError
from wass_env.sim.problem import Problem

__all__ = ["Decision", "FallbackScheduler", "infeasible_reason"]


@dataclass(frozen=True, eq=False)
class Decision:
    """One placement as the wrapper saw it.

    Attributes:
        task: The task placed.
        proposed: The node the wrapped scheduler chose (any integer it returned).
        node: The node the task went to.
        reason: Why ``proposed`` was not used ("" when it was).
        earliest_start: Per node, the task's earliest start at that moment (``inf`` where it
            does not fit) [s]; empty unless recording.
        earliest_finish: Per node, the task's earliest finish at that moment [s]; empty unless
            recording.
    """

    task: int
    proposed: int
    node: int
    reason: str
    earliest_start: NDArray[np.float64]
    earliest_finish: NDArray[np.float64]

    @property
    def fallback(self) -> bool:
        """True when the fallback scheduler's node replaced the proposed one."""
        return bool(self.reason)


def infeasible_reason(problem: Problem, task: int, node: int) -> str:
    """Why ``task`` cannot run on ``node`` ("" when it can)."""
    cl, wf = problem.cluster, problem.workflow
    if not 0 <= node < cl.n_nodes:
        return f"there is no node {node} (the cluster has {cl.n_nodes})"
    if problem.fits[task, node]:
        return ""
    name = cl.node_name[node]
    if cl.down[node]:
        return f"node {name} is marked down"
    need = []
    if wf.cores[task] > cl.cores[node]:
        need.append(f"{int(wf.cores[task])} cores (node {name} has {int(cl.cores[node])})")
    if wf.memory[task] > cl.memory[node]:
        need.append(
            f"{wf.memory[task] / GIB:.3g} GiB of memory (node {name} has "
            f"{cl.memory[node] / GIB:.3g} GiB)"
        )
    return "the task needs " + " and ".join(need)


_EMPTY = np.zeros(0)


class FallbackScheduler(Scheduler):
    """Any scheduler, with infeasible or down nodes replaced by a fallback scheduler's choice.

    Args:
        base: The wrapped scheduler: a registered name, a ``_target_`` mapping or an instance.
        fallback: The scheduler whose node replaces an unusable one (default HEFT: earliest
            finish time). It must choose nodes by :meth:`select_node`.
        record: Keep each decision's per-node earliest start and finish times (for
            explanations).
        seed: Seed of the wrapper's own generator (the wrapped schedulers keep theirs).
        **base_kwargs: Passed to the wrapped scheduler when ``base`` is a name or a mapping.

    Attributes:
        decisions: The decisions of the last :meth:`plan` (or of step-wise use since the last
            problem change), in placement order.
    """

    name: ClassVar[str] = "fallback"

    def __init__(
        self,
        base: str | Mapping[str, Any] | Scheduler = "heft",
        *,
        fallback: str | Mapping[str, Any] | Scheduler = "heft",
        record: bool = False,
        seed: int | None = None,
        **base_kwargs: Any,
    ) -> None:
        self.base = make_scheduler(base, **base_kwargs)
        self.fallback_scheduler = make_scheduler(fallback)
        self.record = record
        self.decisions: list[Decision] = []
        super().__init__(seed)
        self.task_order = self.base.task_order

    def begin(self, problem: Problem) -> None:
        """Start a new decision log; let the wrapped and fallback schedulers prepare."""
        self.decisions = []
        self.base._ensure(problem)
        self.fallback_scheduler._ensure(problem)

    # ------------------------------------------------------------------ the check
    def check(self, builder: PlanBuilder, task: int, proposed: int) -> int:
        """The node ``task`` goes to when the wrapped scheduler proposes ``proposed``.

        Records the decision; the task is not placed (the caller places it).
        """
        problem = builder.problem
        reason = infeasible_reason(problem, task, proposed)
        node = proposed
        if reason:
            node = int(self.fallback_scheduler.select_node(builder, task))
            known = 0 <= proposed < problem.n_nodes
            label = problem.cluster.node_name[proposed] if known else str(proposed)
            reason = f"{self.base.name} chose {label}: {reason}"
        est = eft = _EMPTY
        if self.record:
            est = builder.earliest_start(task).copy()
            eft = builder.earliest_finish(task).copy()
        self.decisions.append(Decision(task, int(proposed), node, reason, est, eft))
        return node

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The wrapped scheduler's node for ``task``, or the fallback's if it is unusable."""
        self._ensure(builder.problem)
        return self.check(builder, task, int(self.base.select_node(builder, task)))

    def act(self, obs: Any, mask: NDArray[np.bool_], env: Any) -> int:
        """Step-wise use: the wrapped scheduler's action, or the fallback's if it is unusable."""
        core = env_core(env)
        self._ensure(core.problem)
        proposed = int(self.base.act(obs, mask, env))
        return self.check(core.builder, core.current_task, proposed)

    def priority(self, problem: Problem) -> NDArray[np.float64]:
        """The wrapped scheduler's task priority."""
        return self.base.priority(problem)

    def plan(self, problem: Problem, *, insertion: bool = True) -> Plan:
        """Plan with the wrapped scheduler, every node choice checked (see the module docstring).

        Args:
            problem: The problem.
            insertion: Insertion policy of the plan builder.
        """
        self._problem = None
        self._ensure(problem)
        if type(self.base).plan is not Scheduler.plan:
            try:
                own = self.base.plan(problem, insertion=insertion)
            except PlanError:
                # Its own plan hit a node it cannot use: drive it decision by decision instead.
                self.decisions = []
            else:
                builder = PlanBuilder(problem, insertion=insertion)
                for task in np.argsort(own.decision, kind="stable").tolist():
                    builder.assign(task, self.check(builder, task, int(own.node[task])))
                return builder.plan()
        builder = PlanBuilder(problem, insertion=insertion)
        queue = ReadyQueue(builder, self.base.priority(problem))
        while not builder.done:
            task = queue.pop()
            node = self.check(builder, task, self.base.select_node(builder, task))
            builder.assign(task, node)
            queue.update()
        return builder.plan()

    def __repr__(self) -> str:
        return f"FallbackScheduler({self.base!r}, fallback={self.fallback_scheduler!r})"
