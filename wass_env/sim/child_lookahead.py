"""HEFT with lookahead's node scores (Bittencourt, Sakellariou & Madeira, PDP 2010).

One computation shared by the scheduler (:class:`agents.heft.HEFTLookaheadScheduler` takes the
node of lowest score) and the environment's lookahead observation (the ``lookahead_gap``
column of :mod:`wass_env.envs.lookahead`), so a policy sees exactly the criterion of the
heuristic it imitates.

The score of node ``p`` for task ``t``: place ``t`` on ``p`` in a copy of the partial plan, then
its children in decreasing upward rank (ties: lowest index), each on its earliest-finish node;
the score is the latest of the children's finish times. A child that still has other unplaced
parents is not placed: its finish is estimated from the parents placed so far (the others
ignored) and it occupies no cores. A task without children scores its own finish time.

Nodes are tried in order of ``t``'s finish time. A child finishes at least its fastest runtime
after ``t``, so once ``EFT(t, p) + that`` exceeds the best score found, ``p`` and every later
node cannot win: they are not simulated and score that lower bound instead. The lowest score
and the nodes within :data:`~wass_env.sim.ordering.TIE_RTOL` of it are exact.

The environment observes these scores and a HEFT-with-lookahead expert then asks for them in the
same state. :meth:`ChildLookahead.of` gives both the one instance of their problem, which keeps
the last state's scores (a plan only grows, so the builder and its number of placed tasks name
the state), and the second request costs nothing.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from wass_env.sim.ordering import TIE_RTOL, argmin_first, snap_priority
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["ChildLookahead", "partial_finish"]


class ChildLookahead:
    """HEFT with lookahead's score of every node, for the tasks of one problem.

    Args:
        problem: The problem (children orders and runtime bounds are precomputed once).
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self._last: tuple[PlanBuilder, int, int, NDArray[np.float64]] | None = None
        rank = snap_priority(problem.upward_rank())
        wf = problem.workflow
        self.kids: list[list[int]] = [
            sorted(wf.children(t).tolist(), key=lambda c: (-rank[c], c))
            for t in range(problem.n_tasks)
        ]
        # Per task, the longest of its children's fastest runtimes [s] (0 without children).
        least = np.zeros(problem.n_tasks)
        if wf.n_edges:
            np.maximum.at(least, wf.edge_src, problem.min_exec[wf.edge_dst])
        self.least = least

    def __getstate__(self) -> dict[str, object]:
        """Pickled without the last state's scores (and the plan they belong to)."""
        return {**self.__dict__, "_last": None}

    @classmethod
    def of(cls, problem: Problem) -> ChildLookahead:
        """The problem's shared instance (made on first use, kept with the problem's tables)."""
        got = problem._cache.get("child_lookahead")
        if got is None:
            got = problem._cache["child_lookahead"] = cls(problem)
        return got  # type: ignore[no-any-return]

    def scores(
        self, builder: PlanBuilder, task: int, eft: NDArray[np.float64] | None = None
    ) -> NDArray[np.float64]:
        """Per node, the latest finish of ``task``'s children placed by EFT after it there [s].

        Args:
            builder: The partial plan (not modified).
            task: A ready task.
            eft: ``builder.earliest_finish(task)`` if already computed.

        Returns:
            ``(n_nodes,)``, read-only: exact for the nodes that can win, a lower bound for the
            others (see the module docstring), ``inf`` where the task does not fit; the task's
            own finish times when it has no children.
        """
        last = self._last
        if last is not None and last[0] is builder and last[1:3] == (builder.n_placed, task):
            return last[3]
        score = self._scores(builder, task, eft)
        score.flags.writeable = False
        self._last = (builder, builder.n_placed, task, score)
        return score

    def _scores(
        self, builder: PlanBuilder, task: int, eft: NDArray[np.float64] | None
    ) -> NDArray[np.float64]:
        if eft is None:
            eft = builder.earliest_finish(task)
        kids = self.kids[task]
        if not kids:
            return np.asarray(eft, dtype=np.float64).copy()
        least = float(self.least[task])  # [s]
        score = np.asarray(eft, dtype=np.float64) + least  # the bound, inf where it cannot run
        best = np.inf
        for p in np.argsort(eft, kind="stable").tolist():
            f_p = float(eft[p])
            if not np.isfinite(f_p) or f_p + least > best + TIE_RTOL * max(abs(best), 1.0):
                break
            trial = builder.copy()
            trial.assign(task, p)
            worst = 0.0
            for c in kids:
                if c in trial.ready:
                    f = trial.earliest_finish(c)
                    q = argmin_first(f)
                    trial.assign(c, q)
                    worst = max(worst, float(f[q]))
                else:
                    worst = max(worst, float(partial_finish(trial, c).min()))
            score[p] = worst
            best = min(best, worst)
        return score


def partial_finish(builder: PlanBuilder, task: int) -> NDArray[np.float64]:
    """Earliest finish of ``task`` on every node counting only its parents placed so far [s].

    Unplaced parents are left out (their arrival is taken as ``-inf``); nodes the task does not
    fit on get ``inf``.
    """
    problem = builder.problem
    ready = builder.placed_parents_ready(task)
    if ready is not None:
        return builder.start_times(task, ready) + problem.exec_time[task]
    wf = problem.workflow
    sl = wf.parent_edge_slice(task)
    parents = wf.edge_src[sl]
    placed = builder.node[parents] >= 0
    ready = np.full(problem.n_nodes, float(problem.stage_in[task]))
    if placed.any():
        finish = np.where(placed, builder.finish[parents], -np.inf)
        nodes = np.where(placed, builder.node[parents], 0)
        arrive = problem.arrival_times(sl, nodes, finish).max(axis=0)
        np.maximum(ready, arrive, out=ready)
    return builder.start_times(task, ready) + problem.exec_time[task]
