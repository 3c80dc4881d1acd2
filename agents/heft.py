"""Rank-based list schedulers for heterogeneous clusters: HEFT, CPOP and PEFT.

All three place the ready task of highest priority next (ties: lowest task index) at its
earliest slot on the chosen node, with or without insertion into idle gaps (``plan(...,
insertion=...)``; the published algorithms use insertion). They differ in the priority and in the
node choice:

* HEFT (Topcuoglu, Hariri & Wu 2002): priority = upward rank ``rank_u`` (mean runtime over the
  nodes plus mean communication to the exit); node = earliest finish time.
* CPOP (same paper): priority = ``rank_u + rank_d``; tasks on the critical path (priority equal
  to the entry task's) all go to the one node that minimises their summed runtime; the others by
  earliest finish time.
* PEFT (Arabnejad & Barbosa 2014): an optimistic cost table ``OCT[t, p]`` (the shortest remaining
  path from ``t`` to an exit if ``t`` runs on ``p``, every later task on its best node, mean
  communication between distinct nodes); priority = ``rank_oct`` (the mean of ``OCT[t]`` over the
  nodes ``t`` fits on); node = minimum of ``EFT + OCT``.
* HEFT with lookahead (Bittencourt, Sakellariou & Madeira 2010): priority = ``rank_u``; node =
  the one that minimises the latest finish of the task's children when each child is then placed
  by earliest finish time (see :class:`HEFTLookaheadScheduler`).

Means are over the nodes a task fits on (:attr:`~wass_env.sim.problem.Problem.mean_exec`); the
mean communication cost of an edge is over ordered pairs of distinct nodes
(:attr:`~wass_env.sim.problem.Problem.mean_comm`). Equal finish times go to the lower-numbered
node; priorities equal up to rounding noise are ties (see :mod:`agents.heuristics`).

Step-wise use (``act`` in the environment): the environment chooses which ready task comes next,
so these schedulers only choose its node, with the rule above.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from agents.heuristics import (
    TIE_RTOL,
    argmin_first,
    min_eft_node,
    online_eft_node,
    snap_priority,
)
from wass_env.scheduling import Scheduler
from wass_env.sim.child_lookahead import ChildLookahead
from wass_env.sim.online import OnlineSim
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = [
    "CPOPScheduler",
    "ContentionAwareHEFTScheduler",
    "HEFTLookaheadScheduler",
    "HEFTScheduler",
    "PEFTScheduler",
    "critical_path_tasks",
    "optimistic_cost_table",
]


class HEFTScheduler(Scheduler):
    """Heterogeneous Earliest Finish Time (Topcuoglu, Hariri & Wu 2002).

    Tasks in decreasing upward rank (a topological order, ties by index); each goes to the node
    where it finishes first, inserted into an idle gap when one is long enough.
    """

    name: ClassVar[str] = "heft"

    def priority(self, problem: Problem) -> NDArray[np.float64]:
        """The upward rank ``rank_u`` (memoised by the problem) [s]."""
        return snap_priority(problem.upward_rank())

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The node with the earliest finish time; ties: lowest index."""
        return min_eft_node(builder, task)

    def dispatch(self, sim: OnlineSim, task: int) -> int:
        """Online HEFT: tasks in decreasing upward rank as they become ready, each to the node
        (of those that can take it now) with the earliest estimated finish; ties: lowest."""
        return online_eft_node(sim, task)


class ContentionAwareHEFTScheduler(HEFTScheduler):
    """HEFT whose finish-time estimates see NIC contention (``heft_contention``).

    The same ranks and node rule as :class:`HEFTScheduler`, but :meth:`plan` builds with
    ``PlanBuilder(contention=True)``: on a ``"nic"`` or ``"shared_nic"`` cluster a transfer is
    estimated as queued behind the transfers already planned on its links (see
    :mod:`wass_env.sim.plan`). On a contention-free cluster it is HEFT. Step-wise inside the
    environment it reads the environment's builder, whose estimates are contention-free.
    """

    name: ClassVar[str] = "heft_contention"
    contention = True


class HEFTLookaheadScheduler(HEFTScheduler):
    """HEFT with one level of lookahead (Bittencourt, Sakellariou & Madeira, PDP 2010).

    Tasks in decreasing upward rank, as in HEFT. For each node ``p`` the task fits on, the task is
    placed on ``p`` in a copy of the partial plan, then its children are placed in decreasing
    upward rank (ties: lowest index), each on its earliest-finish node; the score of ``p`` is the
    latest of the children's finish times. The task goes to the node with the lowest score
    (ties: the earlier finish of the task itself, then the lowest index). A task without children
    goes to its earliest-finish node, as in HEFT.

    A child that still has other unplaced parents cannot be placed yet: its finish time is
    estimated from the parents placed so far (the others are ignored, as if their data were
    already there) and it occupies no cores in the lookahead. Children that the task makes
    ready are placed and occupy their node, so two children competing for one node see each
    other. This is the paper's "schedule the children with HEFT and minimise their maximum EFT"
    variant; it costs about ``1 + children`` placements per node and task, against one query for
    HEFT.
    """

    name: ClassVar[str] = "heft_lookahead"

    def reset(self, seed: int | None = None) -> None:
        """Re-seed and forget the current problem's children order."""
        super().reset(seed)
        self._look: ChildLookahead | None = None

    def begin(self, problem: Problem) -> None:
        """Order every task's children by decreasing upward rank (ties: lowest index)."""
        self._look = ChildLookahead.of(problem)

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The node minimising the latest finish of ``task``'s children placed by EFT after it
        (:class:`~wass_env.sim.child_lookahead.ChildLookahead`); ties: the earlier finish of the
        task itself, then the lowest index."""
        self._ensure(builder.problem)
        assert self._look is not None
        eft = builder.earliest_finish(task)  # [s], inf where the task does not fit
        score = self._look.scores(builder, task, eft)
        best = float(score.min())
        near = score <= best + TIE_RTOL * max(abs(best), 1.0)
        return argmin_first(np.where(near, eft, np.inf))


def critical_path_tasks(problem: Problem) -> NDArray[np.int64]:
    """CPOP's critical path: from the entry task of highest ``rank_u + rank_d``, repeatedly the
    child whose priority equals it (ties: lowest index), down to an exit task.

    Returns:
        The task indices on the path, entry first.
    """
    wf = problem.workflow
    prio = problem.upward_rank() + problem.downward_rank()  # [s]
    entries = wf.entry_tasks
    t = int(entries[argmin_first(-prio[entries])])
    cp_len = float(prio[t])
    tol = TIE_RTOL * max(abs(cp_len), 1.0)
    path = [t]
    while wf.n_children[t] > 0:
        kids = np.sort(wf.children(t))
        on_path = kids[np.abs(prio[kids] - cp_len) <= tol]
        # Every task's priority is the length of the longest path through it, and a longest path
        # through t continues to a child of equal priority, so on_path is never empty.
        t = int(on_path[0]) if on_path.size else int(kids[argmin_first(-prio[kids])])
        path.append(t)
    return np.asarray(path, dtype=np.int64)


class CPOPScheduler(Scheduler):
    """Critical-Path-on-a-Processor (Topcuoglu, Hariri & Wu 2002).

    Priority ``rank_u + rank_d``. Critical-path tasks (see :func:`critical_path_tasks`) go to the
    critical-path processor, the node minimising the sum of their runtimes among the nodes all of
    them fit on (ties: lowest index); if no node fits them all, they are placed like the others,
    by earliest finish time.

    Attributes:
        cp_tasks: Critical-path tasks of the current problem.
        cp_node: The critical-path processor (-1 if none).
    """

    name: ClassVar[str] = "cpop"

    def reset(self, seed: int | None = None) -> None:
        """Re-seed and forget the current problem's critical path."""
        super().reset(seed)
        self.cp_tasks: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.cp_node = -1
        self._on_cp: NDArray[np.bool_] = np.zeros(0, dtype=bool)

    def begin(self, problem: Problem) -> None:
        """Find the critical path and its processor."""
        self.cp_tasks = critical_path_tasks(problem)
        cost = np.where(problem.fits[self.cp_tasks], problem.exec_time[self.cp_tasks], np.inf)
        total = cost.sum(axis=0)  # [s] per node
        self.cp_node = argmin_first(total) if np.isfinite(total).any() else -1
        self._on_cp = np.zeros(problem.n_tasks, dtype=bool)
        self._on_cp[self.cp_tasks] = True

    def priority(self, problem: Problem) -> NDArray[np.float64]:
        """``rank_u + rank_d``: the longest mean-cost path through each task [s]."""
        return snap_priority(problem.upward_rank() + problem.downward_rank())

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The critical-path processor for critical-path tasks, else the earliest finish."""
        self._ensure(builder.problem)
        if self.cp_node >= 0 and self._on_cp[task]:
            return self.cp_node
        return min_eft_node(builder, task)


def optimistic_cost_table(problem: Problem) -> NDArray[np.float64]:
    """PEFT's optimistic cost table, shape ``(n_tasks, n_nodes)`` [s]: see
    :meth:`wass_env.sim.problem.Problem.optimistic_cost` (computed once per problem)."""
    return problem.optimistic_cost()


class PEFTScheduler(Scheduler):
    """Predict Earliest Finish Time (Arabnejad & Barbosa 2014).

    Priority ``rank_oct`` (mean optimistic cost over the nodes a task fits on); each task goes to
    the node minimising ``EFT + OCT`` (ties: lowest index).

    Attributes:
        oct: Optimistic cost table of the current problem [s].
    """

    name: ClassVar[str] = "peft"

    def reset(self, seed: int | None = None) -> None:
        """Re-seed and forget the current problem's cost table."""
        super().reset(seed)
        self.oct: NDArray[np.float64] = np.zeros((0, 0))

    def begin(self, problem: Problem) -> None:
        """Compute the optimistic cost table."""
        self.oct = optimistic_cost_table(problem)

    def priority(self, problem: Problem) -> NDArray[np.float64]:
        """``rank_oct``: mean ``OCT`` over the nodes each task fits on [s]."""
        self._ensure(problem)
        rank = np.where(problem.fits, self.oct, 0.0).sum(axis=1) / problem.fits.sum(axis=1)
        return snap_priority(rank)

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The node minimising ``EFT + OCT`` (optimistic finish of the whole workflow)."""
        self._ensure(builder.problem)
        return argmin_first(builder.earliest_finish(task) + self.oct[task])
