"""Simple list-scheduling heuristics and the tie rules every heuristic here shares.

* :class:`RoundRobinScheduler`: the next node, in cyclic order, that the task fits on.
* :class:`DataLocalityScheduler` (the "WASS heuristic"): the node already holding most of the
  task's input bytes; ties by earliest finish time, then lowest node index.

Both place tasks in the base class order (highest upward rank first among ready tasks) when used
through :meth:`~wass_env.scheduling.Scheduler.plan`; step-wise, they choose the node for
whichever task the environment presents.

Ties. Finish times and ranks are sums of floats (and means of them), so two values that are equal
on paper can differ in the last bits. :func:`argmin_first` and :func:`snap_priority` treat values
within a relative :data:`TIE_RTOL` as equal, so that "ties go to the lowest index" holds as
published (HEFT's ``rank_u(n3) == rank_u(n4) == 80`` in Topcuoglu et al. 2002, for example).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from wass_env.scheduling import Scheduler
from wass_env.sim.online import OnlineSim
from wass_env.sim.ordering import TIE_RTOL, argmin_first, snap_priority
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = [
    "TIE_RTOL",
    "DataLocalityScheduler",
    "RoundRobinScheduler",
    "argmin_first",
    "local_input_bytes",
    "min_eft_node",
    "online_eft_node",
    "snap_priority",
]


def min_eft_node(builder: PlanBuilder, task: int) -> int:
    """The node where ``task`` would finish first (insertion per the builder); ties: lowest."""
    return argmin_first(builder.earliest_finish(task))


def online_eft_node(sim: OnlineSim, task: int) -> int:
    """Among the nodes that can take ``task`` now, the one where it is estimated to finish
    first (its inputs sent now, contention-free, plus its estimated runtime); ties: lowest."""
    free_at, ready = sim.estimate(task)
    finish = np.maximum(free_at, ready) + sim.problem.exec_time[task]
    return argmin_first(np.where(sim.takers(task), finish, np.inf))


def local_input_bytes(builder: PlanBuilder, task: int) -> NDArray[np.float64]:
    """Bytes of ``task``'s inputs already on each node: shape ``(n_nodes,)`` [bytes].

    Counts the bytes of every parent edge on the node its parent was placed on; external inputs
    live on shared storage and count nowhere.

    Raises:
        wass_env.sim.plan.PlanError: if a parent of ``task`` is not placed yet.
    """
    p = builder.problem
    wf = p.workflow
    sl = wf.parent_edge_slice(task)
    if sl.start == sl.stop:
        return np.zeros(p.n_nodes)
    pnode = builder.node[wf.edge_src[sl]]
    if (pnode < 0).any():
        builder.data_ready(task)  # raises PlanError naming the unplaced parent
    local = np.bincount(pnode, weights=wf.edge_bytes[sl], minlength=p.n_nodes)
    return np.asarray(local, dtype=np.float64)


class RoundRobinScheduler(Scheduler):
    """Next feasible node in cyclic order.

    The cursor starts at node 0 for every new plan: on :meth:`reset`, on :meth:`begin` (a new
    problem) and whenever :meth:`select_node` sees a different plan builder than before (a new
    episode of the same problem). After a task goes to node ``n`` the next search starts at
    ``n + 1``; nodes the task does not fit on are skipped.
    """

    name: ClassVar[str] = "round_robin"

    def reset(self, seed: int | None = None) -> None:
        """Re-seed, forget the problem and rewind the cursor to node 0."""
        super().reset(seed)
        self._cursor = 0
        self._builder: PlanBuilder | None = None

    def begin(self, problem: Problem) -> None:
        """Rewind the cursor to node 0."""
        self._cursor = 0
        self._builder = None

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The first node at or after the cursor (cyclically) that ``task`` fits on."""
        self._ensure(builder.problem)
        if builder is not self._builder:
            self._builder = builder
            self._cursor = 0
        fits = builder.problem.fits[task]
        n = fits.size
        order = (np.arange(n) + self._cursor) % n
        node = int(order[int(np.argmax(fits[order]))])
        self._cursor = (node + 1) % n
        return node


class DataLocalityScheduler(Scheduler):
    """The WASS data-locality heuristic.

    Each task goes to the feasible node that already holds most of its input bytes (bytes of the
    edges from parents placed on that node); ties (for instance an entry task, or parents whose
    edges carry no bytes) go to the earliest finish time, then to the lowest node index.
    """

    name: ClassVar[str] = "data_locality"

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The feasible node holding most input bytes of ``task``; ties by EFT, then index."""
        eft = builder.earliest_finish(task)  # inf where the task does not fit
        local = local_input_bytes(builder, task)
        fits = builder.problem.fits[task]
        most = float(local[fits].max())
        best = fits & (local >= most - TIE_RTOL * most)  # [bytes]
        return argmin_first(np.where(best, eft, np.inf))
