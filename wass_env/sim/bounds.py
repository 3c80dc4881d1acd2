"""A communication-aware lower bound on the makespan: the fork-join bound.

:meth:`~wass_env.sim.problem.Problem.lower_bound` (critical path with no communication, total
work over total capacity) ignores data movement, so where a workflow's data is heavy it says
little: on a BWA instance at CCR 5 it is 0.60 x HEFT while no plan known is shorter than HEFT's.
The fork-join bound adds the choice every plan faces at a task with many children (a fork) or
many parents (a join): keep a neighbour on the task's node, where the neighbours share that
node's cores, or move it elsewhere and pay the transfer.

**Fork at hub ``p`` with children ``K``**, for ``p`` on node ``h`` (every node it fits on):
``p`` finishes at ``f >= est(p) + exec(p, h)`` (``est``: the critical path's earliest start).
A child ``c`` on another node finishes its part no sooner than
``a_c = f + min over m != h of (transfer(c's bytes, h -> m) + exec(c, m)) + tail(c)``
(``tail``: the longest path after ``c`` with every task on its fastest node and no
communication). The children ``on`` that stay on ``h`` start after ``f`` and share its cores, so
for every tail level ``t`` the ones with ``tail >= t`` need
``f + sum of exec(c, h) * cores(c) / cores(h) over them + t``, and each one needs
``f + exec(c, h) + tail(c)``. Whatever set ``S`` of children leaves ``h``, the makespan is at
least ``max(max a_c over S, the bound of the children left on h)``. Growing ``S`` to every child
with ``a_c`` no larger than its largest leaves the first term as it is and can only lower the
second, so the minimum over the ``|K| + 1`` sorted prefixes is at most the value of any ``S``:
it is a lower bound for ``p`` on ``h``, and its minimum over ``h`` one for the problem.

**Join at hub ``j`` with parents ``P``** is the same argument with time reversed: for ``j`` on
``h`` the makespan is at least ``start(j) + exec(j, h) + tail(j)``; a parent on another node
delivers no sooner than ``est(q) + min over m != h of (exec(q, m) + transfer(m -> h))``, and the
parents on ``h`` share its cores (each starting no sooner than its ``est``).

Every term is a path or a packing no schedule can beat under the simulator's model: transfers
take ``latency + bytes / bandwidth`` at best (contention can only slow them), a task holds its
cores while it runs, and a node's cores are a shared capacity. Memory limits, other neighbours
and other hubs are ignored, which only loosens the bound. It holds for the problem's own
durations (no noise). Cost: ``O(edges x levels x nodes)`` array work (``levels <= 16``), plus the
pairwise transfer minimum per hub on a matrix network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from wass_env.sim.problem import Problem

__all__ = ["MAX_LEVELS", "fork_join_bound", "hub_bound"]

#: Most tail (fork) or head (join) levels a hub's packing term is evaluated at; any subset of
#: levels gives a valid bound, more levels a tighter one.
MAX_LEVELS = 16

FloatArray = NDArray[np.float64]


def _levels(values: FloatArray) -> FloatArray:
    """Up to :data:`MAX_LEVELS` distinct values of ``values`` (the smallest always included)."""
    u = np.unique(values)
    if u.size > MAX_LEVELS:
        u = u[np.linspace(0, u.size - 1, MAX_LEVELS).round().astype(np.int64)]
    return u


def hub_bound(
    hub_time: FloatArray, away: FloatArray, share: FloatArray, own: FloatArray, level: FloatArray
) -> float:
    """The fork (or join) bound of one hub, minimised over the hub's node.

    Args:
        hub_time: ``(N,)`` time every neighbour kept on node ``h`` waits for (fork: the hub's
            earliest finish on ``h``; join: the hub's runtime on ``h`` plus its tail); ``inf``
            where the hub does not fit.
        away: ``(K, N)`` makespan bound of each neighbour placed off ``h``, hub on ``h``.
        share: ``(K, N)`` node time each neighbour takes on ``h``: runtime x cores / cores of
            ``h``; ``inf`` where it does not fit on ``h``.
        own: ``(K, N)`` runtime on ``h`` plus the neighbour's tail (fork) or head (join).
        level: ``(K,)`` each neighbour's tail (fork) or head (join) [s].

    Returns:
        ``min over h of min over prefixes`` (see the module docstring) [s].
    """
    k, n = away.shape
    order = np.argsort(away, axis=0, kind="stable")  # (K, N) neighbours by away cost, per node
    a = np.take_along_axis(away, order, axis=0)
    sh = np.take_along_axis(share, order, axis=0)
    lv = level[order]  # (K, N)
    ow = np.take_along_axis(own, order, axis=0)
    levels = _levels(level)  # (U,)
    # Suffix j..K-1 stays on h: packing at each level, and each neighbour's own path.
    # A level counts only where some neighbour left on h reaches it.
    above = lv[:, None, :] >= levels[None, :, None]  # (K, U, N)
    contrib = np.where(above, sh[:, None, :], 0.0)
    suffix = np.zeros((k + 1, levels.size, n))
    suffix[:k] = np.cumsum(contrib[::-1], axis=0)[::-1]
    reached = np.zeros((k + 1, levels.size, n), dtype=bool)
    reached[:k] = np.logical_or.accumulate(above[::-1], axis=0)[::-1]
    pack = np.where(reached, suffix + levels[None, :, None], -np.inf).max(axis=1)  # (K+1, N)
    own_max = np.full((k + 1, n), -np.inf)
    own_max[:k] = np.maximum.accumulate(ow[::-1], axis=0)[::-1]
    stay = hub_time[None, :] + np.maximum(pack, own_max)  # (K+1, N)
    stay[k] = -np.inf  # nothing stays
    tau = np.full((k + 1, n), -np.inf)
    tau[1:] = a  # the prefix of j neighbours leaves: its largest away cost
    per_node = np.maximum(tau, stay).min(axis=0)  # (N,)
    per_node = np.where(np.isfinite(hub_time), per_node, np.inf)
    return float(per_node.min())


def _cheapest_elsewhere(cost: FloatArray) -> FloatArray:
    """``(T, N)``: each task's smallest runtime on a node other than ``h`` (``inf``: none)."""
    t, n = cost.shape
    srt = np.sort(cost, axis=1)
    first = srt[:, 0]
    second = srt[:, 1] if n > 1 else np.full(t, np.inf)
    # With two nodes tied at the minimum, the second smallest is the minimum again.
    return np.where(cost == first[:, None], second[:, None], first[:, None])  # type: ignore[no-any-return]


def _off_min(
    problem: Problem, nbytes: FloatArray, cost: FloatArray, elsewhere: FloatArray, outgoing: bool
) -> FloatArray:
    """``(K, N)``: for the hub on ``h``, each neighbour's cheapest transfer + runtime on a node
    ``m != h`` (``outgoing``: data ``h -> m``, else ``m -> h``); ``inf`` with no such node.
    ``elsewhere`` is the neighbours' rows of :func:`_cheapest_elsewhere` (scalar networks)."""
    cl = problem.cluster
    if cl.bandwidth is not None:
        lat = float(cl.latency or 0.0)
        return lat + nbytes[:, None] / cl.bandwidth + elsewhere  # type: ignore[no-any-return]
    k, n = cost.shape
    lat_m = np.asarray(cl.latency_matrix, dtype=np.float64)
    inv_bw = 1.0 / np.asarray(cl.bandwidth_matrix, dtype=np.float64)
    out = np.empty((k, n))
    for h in range(n):
        if outgoing:
            t = lat_m[h][None, :] + nbytes[:, None] * inv_bw[h][None, :] + cost  # h -> m
        else:
            t = lat_m[:, h][None, :] + nbytes[:, None] * inv_bw[:, h][None, :] + cost  # m -> h
        t[:, h] = np.inf
        out[:, h] = t.min(axis=1)
    return out


def _neighbours(ids: NDArray[np.int64], nbytes: FloatArray) -> tuple[NDArray[np.int64], FloatArray]:
    """Distinct neighbours with the largest bytes of their edges to the hub."""
    uniq, inv = np.unique(ids, return_inverse=True)
    b = np.zeros(uniq.size)
    np.maximum.at(b, inv, nbytes)
    return uniq, b


def fork_join_bound(problem: Problem) -> float:
    """The largest fork or join bound over every task (module docstring) [s]; 0 without edges
    or on one node (the problem's :meth:`~wass_env.sim.problem.Problem.lower_bound` is then the
    better one)."""
    wf = problem.workflow
    n = problem.n_nodes
    if wf.n_edges == 0 or n == 1:
        return 0.0
    cost = np.where(problem.fits, problem.exec_time, np.inf)  # (T, N) [s]
    cores_t = wf.cores.astype(np.float64)
    share = cost * cores_t[:, None] / problem.cluster.cores.astype(np.float64)[None, :]
    elsewhere = _cheapest_elsewhere(cost)
    est = problem.earliest_finish() - problem.min_exec  # the critical path's earliest start
    tail = problem.path_after()

    def side(
        hub_time: FloatArray,
        nbrs: NDArray[np.int64],
        nb: FloatArray,
        outgoing: bool,
        level: FloatArray,
    ) -> float:
        """The hub's bound over neighbours ``nbrs`` (``level``: their tails or heads)."""
        lv = level[nbrs]
        off = _off_min(problem, nb, cost[nbrs], elsewhere[nbrs], outgoing)
        away = hub_time[None, :] + off + lv[:, None]
        return hub_bound(hub_time, away, share[nbrs], cost[nbrs] + lv[:, None], lv)

    cptr = wf.child_ptr
    best = 0.0
    for t in range(wf.n_tasks):
        if cptr[t + 1] > cptr[t]:  # fork at t: children wait for its finish on h
            edges = wf.child_edges[cptr[t] : cptr[t + 1]]
            kids, nb = _neighbours(wf.edge_dst[edges], wf.edge_bytes[edges])
            best = max(best, side(est[t] + cost[t], kids, nb, True, tail))
        sl = wf.parent_edge_slice(t)
        if sl.stop > sl.start:  # join at t: parents deliver before its runtime and tail on h
            pars, nb = _neighbours(wf.edge_src[sl], wf.edge_bytes[sl])
            best = max(best, side(cost[t] + tail[t], pars, nb, False, est))
    return best
