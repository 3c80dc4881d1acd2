"""A plan made shorter by pilot passes: each decision tries a few other nodes with the rest of the
plan kept, and keeps a change only where the whole plan gets shorter.

:func:`improve_plan` walks the tasks in a list schedule's order (the highest-priority ready task
first; which tasks are ready depends on which are placed, not where, so the order is fixed per
problem and priority, :func:`list_order`). At task ``t`` the prefix follows the incumbent plan;
each candidate node ``n`` (the ``k`` earliest-finish nodes and the data-local ones,
:func:`local_nodes`) is tried by placing ``t`` on ``n`` and every later task on its incumbent
node. The shortest completion that is strictly shorter than the incumbent becomes the new
incumbent. The makespan never grows, so the result is never longer than the plan it starts
from. A completion stops as soon as its partial makespan reaches the incumbent's (a list
schedule's makespan only grows as tasks are added), which makes most tries short.

With ``follow``, passes that move groups come after: each candidate is tried once more with
the task's *followers* (its children on its node that get most of their input bytes from it)
moved along. A task whose output is heavy cannot move alone, since its child would then fetch
that output; moved with it, it can (SRASearch: each ``fasterq-dump`` hands terabytes to its one
``bowtie2``). These passes start from the plain passes' result, so they are never longer.

Cost: per task at most ``k + 2`` partial replays of the tasks after it (twice that in a group
pass for a task with followers), so O(n^2) placements per pass in the worst case; 0.1-1 s for
50-200 tasks on 4-64 nodes, usually one to three passes.
Used by the plan hints (``plan_hint_improve``, :func:`wass_env.envs.hints.plan_portfolio`) and
the ``improved_portfolio`` scheduler.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["followers", "improve_plan", "list_order", "local_nodes"]

#: Relative margin a completion must beat the incumbent by (below it: a tie, no change).
_GAIN = 1e-12


def list_order(problem: Problem, priority: NDArray[np.float64]) -> list[int]:
    """The order in which a list schedule places the tasks: the highest-priority ready task
    first (ties: lowest index, as :class:`~wass_env.sim.ordering.ReadyQueue`)."""
    wf = problem.workflow
    missing = wf.n_parents.tolist()
    key = (-np.asarray(priority, dtype=np.float64)).tolist()
    heap = [(key[t], t) for t in range(wf.n_tasks) if missing[t] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        t = heapq.heappop(heap)[1]
        order.append(t)
        for c in wf.children(t).tolist():
            missing[c] -= 1
            if missing[c] == 0:
                heapq.heappush(heap, (key[c], c))
    return order


def local_nodes(builder: PlanBuilder, task: int) -> list[int]:
    """Nodes that keep data local: the one holding most of ``task``'s input bytes, and the one
    holding most of its children's inputs from their other placed parents."""
    wf = builder.problem.workflow
    n = builder.problem.n_nodes
    out: list[int] = []
    sl = wf.parent_edge_slice(task)
    if sl.stop > sl.start:
        local = np.bincount(builder.node[wf.edge_src[sl]], weights=wf.edge_bytes[sl], minlength=n)
        if local.max() > 0:
            out.append(int(local.argmax()))
    co = np.zeros(n)
    for c in wf.children(task).tolist():
        csl = wf.parent_edge_slice(c)
        par = wf.edge_src[csl]
        placed = (builder.node[par] >= 0) & (par != task)
        if placed.any():
            co += np.bincount(
                builder.node[par[placed]], weights=wf.edge_bytes[csl][placed], minlength=n
            )
    if co.max() > 0:
        out.append(int(co.argmax()))
    return out


def followers(problem: Problem, nodes: Sequence[int], task: int) -> list[int]:
    """The children of ``task`` on its node (``nodes[task]``) whose heaviest input edge (most
    bytes, more than 0; the first on ties) comes from ``task``."""
    wf = problem.workflow
    out: list[int] = []
    for c in dict.fromkeys(wf.children(task).tolist()):
        if nodes[c] != nodes[task]:
            continue
        sl = wf.parent_edge_slice(c)
        by = wf.edge_bytes[sl]
        i = int(np.argmax(by))
        if by[i] > 0 and int(wf.edge_src[sl][i]) == task:
            out.append(int(c))
    return out


def improve_plan(
    problem: Problem,
    nodes: NDArray[np.integer],
    priority: NDArray[np.float64],
    *,
    k: int = 2,
    locality: bool = True,
    insertion: bool = True,
    passes: int = 1,
    order: Sequence[int] | None = None,
    follow: bool = False,
) -> tuple[NDArray[np.int64], float, int]:
    """Pilot passes over the plan ``nodes`` (module docstring), until a pass changes nothing or
    ``passes`` have run; with ``follow``, then as many passes that also move each task's
    followers along.

    Args:
        problem: The problem.
        nodes: The starting plan's node of every task (feasible in ``priority`` order).
        priority: The list schedule's task priorities (the environment's).
        k: Earliest-finish nodes tried per task (besides the data-local ones).
        locality: Also try the data-local nodes.
        insertion: The plan builder's insertion policy.
        passes: Most passes over the tasks (at least one).
        order: The placement order (default: :func:`list_order` of ``priority``).
        follow: Also run the passes that move a task with its followers (:func:`followers`).

    Returns:
        ``(nodes, makespan, changes)``: the improved plan's nodes, its makespan [s] placed in
        that order, and how many decisions the passes changed.
    """
    inc = np.asarray(nodes, dtype=np.int64).copy()
    seq = list_order(problem, priority) if order is None else [int(t) for t in order]
    span, changes = np.inf, 0
    for group in (False, True) if follow else (False,):
        for _ in range(max(int(passes), 1)):
            span, c = _pass(problem, inc, seq, k, locality, insertion, group)
            changes += c
            if not c:
                break
    return inc, span, changes


def _pass(
    problem: Problem,
    inc: NDArray[np.int64],
    seq: list[int],
    k: int,
    locality: bool,
    insertion: bool,
    group: bool = False,
) -> tuple[float, int]:
    """One pilot pass over the tasks in ``seq`` order; ``inc`` is improved in place (``group``:
    each candidate also with the task's followers moved along). Returns the plan's makespan
    [s] and the number of decisions changed."""
    b = PlanBuilder(problem, insertion=insertion)
    full = b.copy()
    for t in seq:
        full.assign(t, int(inc[t]))
    best = float(full.max_finish)
    changes = 0
    nodes = inc.tolist()
    for i, t in enumerate(seq):
        eft = b.earliest_finish(t)
        cand = [int(n) for n in np.argsort(eft, kind="stable")[:k]]
        if locality:
            cand += local_nodes(b, t)
        won, won_span = -1, best * (1.0 - _GAIN)
        won_moved: tuple[int, ...] = ()
        fol = tuple(followers(problem, nodes, t)) if group else ()
        for n in dict.fromkeys(cand):  # unique, in order
            if n == nodes[t] or not np.isfinite(eft[n]):
                continue
            tries: list[tuple[int, ...]] = [()]
            if fol and all(problem.fits[u, n] for u in fol):
                tries.append(fol)
            for moved in tries:
                c = b.copy()
                c.assign(t, n)
                j = i + 1
                while c.max_finish < won_span and j < len(seq):
                    u = seq[j]
                    c.assign(u, n if u in moved else nodes[u])
                    j += 1
                if j == len(seq) and c.max_finish < won_span:
                    won, won_span, won_moved = n, float(c.max_finish), moved
        if won >= 0:
            nodes[t] = won
            for u in won_moved:
                nodes[u] = won
            best = won_span
            changes += 1
        b.assign(t, nodes[t])
    inc[:] = nodes
    return float(b.max_finish), changes
