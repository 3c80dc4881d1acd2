"""Executing a plan, event by event.

:func:`execute` replays a :class:`~wass_env.sim.plan.Plan` the way a cluster would run it: each
node starts its tasks in the plan's order (by planned start, ties by placement order); a task
starts as soon as all its inputs have arrived on its node, the cluster's ``dispatch_latency``
has passed since its last parent finished, and the node has its cores free (a zero-length task
takes no cores). Actual runtimes may differ from the planned ones (seeded multiplicative noise),
so the realized schedule can drift from the plan; without noise it reproduces the plan exactly.
"""

from __future__ import annotations

import heapq

import numpy as np
from numpy.typing import ArrayLike

from wass_env.sim.plan import Plan, Schedule

__all__ = ["execute", "runtime_noise"]


def runtime_noise(n: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Mean-one lognormal runtime factors: ``exp(N(-sigma^2/2, sigma))``, shape ``(n,)``."""
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return np.ones(n)
    return rng.lognormal(mean=-0.5 * sigma * sigma, sigma=sigma, size=n)


def execute(
    plan: Plan,
    *,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
    runtimes: ArrayLike | None = None,
) -> Schedule:
    """Run ``plan`` and return the realized schedule.

    Args:
        plan: The plan (node per task and, per node, the start order).
        noise: Sigma of the mean-one lognormal factor applied to every runtime (0 = exact).
        rng: Random generator for the noise (required when ``noise > 0``).
        runtimes: Explicit actual runtimes per task [s]; overrides ``noise``.

    Returns:
        The realized :class:`~wass_env.sim.plan.Schedule`.
    """
    problem = plan.problem
    wf, cl = problem.workflow, problem.cluster
    n_t = wf.n_tasks
    node = plan.node.tolist()
    if runtimes is not None:
        dur = np.asarray(runtimes, dtype=np.float64).reshape(-1)
        if dur.size != n_t or not np.all(np.isfinite(dur)) or np.any(dur < 0):
            raise ValueError(f"runtimes must be {n_t} finite values >= 0")
        dur_l = dur.tolist()
    else:
        base = problem.exec_time[np.arange(n_t), plan.node]
        if noise > 0:
            if rng is None:
                raise ValueError("execute(noise > 0) needs an rng for reproducible noise")
            base = base * runtime_noise(n_t, noise, rng)
        dur_l = base.tolist()

    cores = wf.cores.tolist()
    free = cl.cores.tolist()
    queues = [plan.node_order(n).tolist() for n in range(cl.n_nodes)]
    head = [0] * cl.n_nodes
    missing = wf.n_parents.tolist()
    arrive = problem.stage_in.tolist()  # inputs-ready time, grows as parents finish
    release = [0.0] * n_t
    start = [float("nan")] * n_t
    finish = [float("nan")] * n_t
    child_ptr = wf.child_ptr.tolist()
    child_edges = wf.child_edges.tolist()
    edge_dst = wf.edge_dst.tolist()
    edge_bytes = wf.edge_bytes.tolist()
    transfer = cl.transfer_time
    dispatch = cl.dispatch_latency  # [s] from a parent's end to when its child may start

    events: list[tuple[float, int, int, int]] = []  # (time, seq, kind, item); kind 0 = finish
    seq = 0

    def try_start(n: int, now: float) -> None:
        nonlocal seq
        q = queues[n]
        while head[n] < len(q):
            t = q[head[n]]
            if missing[t] > 0:
                return  # retried when its last parent finishes
            if arrive[t] > now:
                heapq.heappush(events, (arrive[t], seq, 1, n))
                seq += 1
                return
            d = dur_l[t]
            if d > 0:  # a zero-length task takes no cores
                if free[n] < cores[t]:
                    return  # retried when a task on n finishes
                free[n] -= cores[t]
            start[t] = now
            f = now + d
            heapq.heappush(events, (f, seq, 0, t))
            seq += 1
            head[n] += 1

    for n in range(cl.n_nodes):
        try_start(n, 0.0)
    done = 0
    while events:
        now, _, kind, item = heapq.heappop(events)
        if kind == 1:
            try_start(item, now)
            continue
        t = item
        finish[t] = now
        done += 1
        nt = node[t]
        if dur_l[t] > 0:
            free[nt] += cores[t]
        for k in range(child_ptr[t], child_ptr[t + 1]):
            e = child_edges[k]
            ch = edge_dst[e]
            a = now + max(transfer(edge_bytes[e], nt, node[ch]), dispatch)
            if a > arrive[ch]:
                arrive[ch] = a
            if now > release[ch]:
                release[ch] = now
            missing[ch] -= 1
            if missing[ch] == 0 and node[ch] != nt:
                try_start(node[ch], now)
        try_start(nt, now)
    if done != n_t:  # pragma: no cover - a valid plan always completes
        raise RuntimeError(f"execution stalled with {n_t - done} tasks unfinished")
    return Schedule(
        problem=problem,
        node=plan.node.copy(),
        start=np.asarray(start),
        finish=np.asarray(finish),
        release=np.asarray(release),
    )
