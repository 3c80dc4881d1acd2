"""Simple baseline schedulers: random, workflow-agnostic Slurm with backfilling, and the best
single node.

A learned scheduler that these match has learned nothing: :class:`SingleNodeScheduler` is the
plan "keep all data in one place", which is hard to beat when communication is heavy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from agents.heuristics import TIE_RTOL, argmin_first, min_eft_node, snap_priority
from wass_env.scheduling import Scheduler
from wass_env.sim.online import OnlineSim
from wass_env.sim.ordering import ReadyQueue
from wass_env.sim.plan import Plan, PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["RandomScheduler", "SingleNodeScheduler", "SlurmScheduler"]


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

    def dispatch(self, sim: OnlineSim, task: int) -> int:
        """A uniformly random node among those that can take the task now."""
        feasible = np.flatnonzero(sim.takers(task))
        return int(feasible[self.rng.integers(feasible.size)])


class SlurmScheduler(Scheduler):
    """ "Traditional Slurm": workflow-agnostic, submission order, with backfilling.

    What Slurm's default scheduler (``SchedulerType=sched/backfill``) does with a workflow
    submitted as a job set (every task a job, in file order, with ``afterok`` dependencies, as
    ``wass plan --slurm`` writes it): jobs are taken in submission (file) order once their
    parents are placed, and each goes to the node where it can start first, ignoring where its
    input data lives (ties: lowest index). With the plan builder's insertion policy (the
    default) a job starts in any idle gap long enough for it, also before jobs submitted
    earlier that are already scheduled later: that is backfilling, conservative (a job placed
    earlier never moves). With ``insertion=False`` no job starts before the latest start
    already scheduled on its node (a queue per node: no backfilling). No data locality and no
    look-ahead; the transfers still cost time when the task runs.
    """

    name: ClassVar[str] = "slurm"
    task_order = "fifo"

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The node where ``task`` could start first, ignoring data transfers (ties: lowest)."""
        release = builder.release_time(task)
        ready = np.full(builder.problem.n_nodes, release)
        return int(np.argmin(builder.start_times(task, ready)))

    def dispatch(self, sim: OnlineSim, task: int) -> int:
        """Online FCFS: jobs in submission (file) order as their dependencies finish, each to
        the node expected to have its cores free first (ties: lowest index, Slurm's node
        order), where its input data lives ignored."""
        free_at, _ = sim.estimate(task)
        return argmin_first(np.where(sim.takers(task), free_at, np.inf))


class SingleNodeScheduler(Scheduler):
    """Every task on the one node that gives the shortest makespan.

    For each node, all tasks are placed on it in decreasing upward rank (ties: lowest index; a
    multi-core node runs several at once, with the builder's insertion policy); the node whose
    plan is shortest wins (ties: lowest index). No data ever moves between nodes, only the
    external inputs are staged in. A task that does not fit on the node (cores or memory) goes
    to its earliest-finish node instead, so the plan always exists. Nodes with identical task
    runtimes, cores and memory on a uniform network give identical plans, so only one of each
    kind is tried (4 plans on ``het16``, 1 on ``hom64``).

    Step-wise (``select_node``): the best node of the problem, found once per problem and
    insertion policy.

    Attributes:
        best_node: The node chosen for the last planned problem (-1 before any).
    """

    name: ClassVar[str] = "single_node"

    def reset(self, seed: int | None = None) -> None:
        """Re-seed and forget the chosen nodes."""
        super().reset(seed)
        self._best: dict[bool, tuple[int, Plan]] = {}
        self.best_node = -1

    def begin(self, problem: Problem) -> None:
        """Forget the node chosen for the previous problem."""
        self._best = {}

    def _choose(self, problem: Problem, insertion: bool) -> tuple[int, Plan]:
        self._ensure(problem)
        if insertion not in self._best:
            best: tuple[int, Plan] | None = None
            for n in _distinct_nodes(problem):
                plan = _plan_on_node(problem, n, insertion)
                # Strictly shorter beyond rounding noise: ties keep the lower node.
                if best is None or plan.makespan < best[1].makespan * (1.0 - TIE_RTOL):
                    best = (n, plan)
            assert best is not None  # a cluster has at least one node
            self._best[insertion] = best
        self.best_node = self._best[insertion][0]
        return self._best[insertion]

    def plan(self, problem: Problem, *, insertion: bool = True) -> Plan:
        """The shortest of the one-node plans (see the class docstring)."""
        return self._choose(problem, insertion)[1]

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The problem's best single node, or the earliest finish where the task does not fit."""
        node = self._choose(builder.problem, builder.insertion)[0]
        if builder.problem.fits[task, node]:
            return node
        return min_eft_node(builder, task)


def _distinct_nodes(problem: Problem) -> list[int]:
    """One node of each kind that yields its own one-node plan (lowest index of each kind)."""
    cl = problem.cluster
    if cl.bandwidth is None or cl.latency is None:  # per-pair network: every node differs
        return list(range(problem.n_nodes))
    seen: set[bytes] = set()
    out = []
    for n in range(problem.n_nodes):
        key = (
            problem.exec_time[:, n].tobytes()
            + problem.fits[:, n].tobytes()
            + np.asarray([cl.cores[n], cl.memory[n]], dtype=np.float64).tobytes()
        )
        if key not in seen:
            seen.add(key)
            out.append(n)
    return out


def _plan_on_node(problem: Problem, node: int, insertion: bool) -> Plan:
    """Every task on ``node`` (where it fits; elsewhere by earliest finish), by upward rank."""
    builder = PlanBuilder(problem, insertion=insertion)
    queue = ReadyQueue(builder, snap_priority(problem.upward_rank()))
    fits = problem.fits[:, node]
    while not builder.done:
        task = queue.pop()
        builder.assign(task, node if fits[task] else min_eft_node(builder, task))
        queue.update()
    return builder.plan()
