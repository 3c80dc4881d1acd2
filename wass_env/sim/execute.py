"""Executing a plan, event by event.

:func:`execute` replays a :class:`~wass_env.sim.plan.Plan` the way a cluster would run it: each
node starts its tasks in the plan's order (by planned start, ties by placement order); a task
starts as soon as all its inputs have arrived on its node, the cluster's ``dispatch_latency``
has passed since its last parent finished, and the node has its cores and memory free (a
zero-length task takes neither). Actual runtimes may differ from the planned ones (seeded
multiplicative noise), so the realized schedule can drift from the plan; without noise, on a
contention-free network, it reproduces the plan exactly.

Data moves as the cluster's network model says (:mod:`wass_env.sim.network`): a cross-node
edge is a transfer started when its parent finishes, and a task's external input is read from
shared storage from time 0. Under ``"contention_free"`` each transfer costs ``latency + bytes /
bandwidth``; under ``"nic"`` and ``"shared_nic"`` concurrent transfers share the nodes' links,
so the realized schedule is later than the (contention-free) plan wherever links are busy.
"""

from __future__ import annotations

import heapq

import numpy as np
from numpy.typing import ArrayLike

from wass_env.sim.network import STORAGE, FlowNetwork
from wass_env.sim.plan import Plan, Schedule

__all__ = ["execute", "realize", "runtime_noise"]


def runtime_noise(n: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Mean-one lognormal runtime factors: ``exp(N(-sigma^2/2, sigma))``, shape ``(n,)``."""
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return np.ones(n)
    return rng.lognormal(mean=-0.5 * sigma * sigma, sigma=sigma, size=n)


def realize(plan: Plan, *, noise: float = 0.0, rng: np.random.Generator | None = None) -> Schedule:
    """The schedule ``plan`` realizes: the plan itself when executing it would reproduce it
    exactly (no runtime noise, a contention-free network), else :func:`execute`'s result.

    The shortcut is what makes a noise-free episode cost no execution at all; under a NIC
    network model the plan's contention-free transfer estimates are not what happens, so the
    plan is executed.
    """
    if noise > 0 or plan.problem.cluster.contention:
        return execute(plan, noise=noise, rng=rng)
    return plan


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
    # Memory is only accounted where it can limit concurrency (whole bytes, as the planner).
    if problem.memory_bound:
        mem = problem.memory_demand()
        mem_free: list[int | None] = list(problem.memory_capacity())
    else:
        mem = [0] * n_t
        mem_free = [None] * cl.n_nodes
    queues = [plan.node_order(n).tolist() for n in range(cl.n_nodes)]
    head = [0] * cl.n_nodes
    missing = wf.n_parents.tolist()
    release = [0.0] * n_t
    start = [float("nan")] * n_t
    finish = [float("nan")] * n_t
    child_ptr = wf.child_ptr.tolist()
    child_edges = wf.child_edges.tolist()
    edge_dst = wf.edge_dst.tolist()
    edge_bytes = wf.edge_bytes.tolist()
    n_edges = wf.n_edges
    flows = cl.contention
    net = FlowNetwork(cl) if flows else None
    if flows:
        # Transfers not yet arrived per task; all its inputs are there when it drops to 0 and
        # every parent has finished. arrive[t] then only holds the dispatch latency's bound.
        pending = [0] * n_t
        arrive = [0.0] * n_t
    else:
        arrive = problem.stage_in.tolist()  # inputs-ready time, grows as parents finish
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
            if flows and pending[t] > 0:
                return  # retried when its last input arrives
            if arrive[t] > now:
                heapq.heappush(events, (arrive[t], seq, 1, n))
                seq += 1
                return
            d = dur_l[t]
            if d > 0:  # a zero-length task takes no cores and no memory
                if free[n] < cores[t]:
                    return  # retried when a task on n finishes
                mf = mem_free[n]
                m = mem[t]
                if mf is not None and m > 0:
                    if mf < m:
                        return  # retried when a task on n finishes
                    mem_free[n] = mf - m
                free[n] -= cores[t]
            start[t] = now
            f = now + d
            heapq.heappush(events, (f, seq, 0, t))
            seq += 1
            head[n] += 1

    if net is not None:
        for t, b in enumerate(wf.input_bytes.tolist()):
            if b > 0:
                pending[t] += 1
                net.start(STORAGE, node[t], b, n_edges + t)
    for n in range(cl.n_nodes):
        try_start(n, 0.0)
    done = 0
    while True:
        if net is not None:
            t_net = net.next_time()
            if t_net < (events[0][0] if events else float("inf")) or (
                events and t_net == events[0][0]
            ):
                # Transfers first at equal times: a task that finishes then sees its inputs.
                now = t_net
                for key in net.advance(t_net):
                    ch = edge_dst[key] if key < n_edges else key - n_edges
                    pending[ch] -= 1
                    if pending[ch] == 0 and missing[ch] == 0:
                        try_start(node[ch], now)
                continue
        if not events:
            break
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
            mf = mem_free[nt]
            if mf is not None:
                mem_free[nt] = mf + mem[t]
        for k in range(child_ptr[t], child_ptr[t + 1]):
            e = child_edges[k]
            ch = edge_dst[e]
            if net is None:
                a = now + max(transfer(edge_bytes[e], nt, node[ch]), dispatch)
                if a > arrive[ch]:
                    arrive[ch] = a
            elif dispatch > 0 and now + dispatch > arrive[ch]:
                arrive[ch] = now + dispatch  # the transfer's own arrival is counted in pending
            if now > release[ch]:
                release[ch] = now
            missing[ch] -= 1
            nc = node[ch]
            if net is not None and nc != nt:
                pending[ch] += 1
                net.start(nt, nc, edge_bytes[e], e, now)
            if missing[ch] == 0 and nc != nt:
                try_start(nc, now)
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
