"""Property tests (hypothesis) of the simulator over random DAGs, clusters and placements.

Tasks hold cores and memory; about half the drawn problems give some tasks memory and some nodes
finite memory, so both resources bind.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wass_env.sim import Cluster, PlanBuilder, Problem, Schedule, Workflow, execute
from wass_env.sim.plan import _NodeProfile

TOL = 1e-9


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    n = draw(st.integers(1, 18))
    edges = [
        (i, j)
        for j in range(n)
        for i in range(j)
        if draw(st.booleans()) and draw(st.integers(0, 3)) == 0
    ]
    work = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.7, 10.0]), min_size=n, max_size=n))
    n_nodes = draw(st.integers(1, 4))
    node_cores = draw(st.lists(st.integers(1, 4), min_size=n_nodes, max_size=n_nodes))
    cores = draw(st.lists(st.integers(1, max(node_cores)), min_size=n, max_size=n))
    nbytes = draw(
        st.lists(
            st.sampled_from([0.0, 10.0, 55.0, 300.0]), min_size=len(edges), max_size=len(edges)
        )
    )
    stage = draw(st.lists(st.sampled_from([0.0, 0.0, 40.0]), min_size=n, max_size=n))
    with_memory = draw(st.booleans())
    node_mem = draw(
        st.lists(
            st.sampled_from([np.inf, 8.0, 10.0, 16.0]) if with_memory else st.just(np.inf),
            min_size=n_nodes,
            max_size=n_nodes,
        )
    )
    mem = draw(
        st.lists(
            st.sampled_from([0.0, 0.0, 3.0, 5.0, 7.0]) if with_memory else st.just(0.0),
            min_size=n,
            max_size=n,
        )
    )  # [bytes]; whole numbers, so the planner's rounding to whole bytes changes nothing
    wf = Workflow.from_arrays(
        work,
        np.asarray(edges, dtype=np.int64).reshape(-1, 2),
        nbytes,
        cores=cores,
        memory=mem,
        input_bytes=stage,
    )
    speeds = draw(st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=n_nodes, max_size=n_nodes))
    node_cores[0] = max(node_cores)  # every task fits node 0
    cl = Cluster(
        speeds,
        node_cores,
        node_mem,
        bandwidth=draw(st.sampled_from([10.0, 100.0])),
        latency=draw(st.sampled_from([0.0, 0.25])),
        network=draw(st.sampled_from(["contention_free", "contention_free", "nic", "shared_nic"])),
    )
    return Problem(wf, cl)


def random_plan(problem: Problem, insertion: bool, seed: int) -> tuple[PlanBuilder, list]:
    """Place ready tasks in random order on random feasible nodes; record each query."""
    rng = np.random.default_rng(seed)
    b = PlanBuilder(problem, insertion=insertion)
    queries = []
    while not b.done:
        ready = sorted(b.ready)
        t = ready[int(rng.integers(len(ready)))]
        feasible = np.flatnonzero(problem.fits[t])
        n = int(feasible[rng.integers(feasible.size)])
        est = float(b.earliest_start(t)[n])
        queries.append((t, n, est, brute_force_start(b, t, n)))
        b.assign(t, n)
    return b, queries


def brute_force_start(b: PlanBuilder, t: int, n: int) -> float:
    """Earliest feasible start by trying every candidate time (the definition, slowly)."""
    p = b.problem
    wf = p.workflow
    r = float(b.data_ready(t)[n])
    d = float(p.exec_time[t, n])
    placed = [i for i in np.flatnonzero(b.node == n).tolist()]
    lo = r if b.insertion else max([r] + [float(b.start[i]) for i in placed])
    if d == 0:
        return lo
    cap = int(p.cluster.cores[n])
    mem_cap = float(p.cluster.memory[n])
    for s in sorted({lo} | {float(b.finish[i]) for i in placed if b.finish[i] > lo}):
        points = {s} | {float(b.start[i]) for i in placed if s < b.start[i] < s + d}
        if all(
            sum(int(wf.cores[i]) for i in placed if b.start[i] <= x < b.finish[i]) + wf.cores[t]
            <= cap
            and sum(float(wf.memory[i]) for i in placed if b.start[i] <= x < b.finish[i])
            + float(wf.memory[t])
            <= mem_cap
            for x in points
        ):
            return s
    raise AssertionError("no feasible start found")


def check_valid(s: Schedule) -> None:
    """Precedence with (at least) contention-free transfer delays, per-node core and memory
    capacity."""
    p = s.problem
    wf = p.workflow
    for e in range(wf.n_edges):
        a, c = int(wf.edge_src[e]), int(wf.edge_dst[e])
        delay = p.comm_time(e, int(s.node[a]), int(s.node[c]))
        assert s.start[c] >= s.finish[a] + delay - TOL
    assert np.all(s.start >= p.stage_in - TOL)
    for n in range(p.n_nodes):
        on = np.flatnonzero((s.node == n) & (s.finish > s.start))
        for x in s.start[on]:
            running = on[(s.start[on] <= x) & (s.finish[on] > x)]
            assert wf.cores[running].sum() <= p.cluster.cores[n]
            assert wf.memory[running].sum() <= p.cluster.memory[n]


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(problems(), st.booleans(), st.integers(0, 2**31 - 1))
def test_earliest_start_is_the_true_earliest(problem: Problem, insertion: bool, seed: int):
    _, queries = random_plan(problem, insertion, seed)
    for _, _, est, brute in queries:
        assert abs(est - brute) <= TOL * max(1.0, brute)


@SETTINGS
@given(problems(), st.booleans(), st.integers(0, 2**31 - 1))
def test_plans_are_valid_and_replay_exactly(problem: Problem, insertion: bool, seed: int):
    b, _ = random_plan(problem, insertion, seed)
    plan = b.plan()
    check_valid(plan)
    assert plan.makespan >= problem.lower_bound() - TOL
    realized = execute(plan)
    check_valid(realized)
    if problem.cluster.network == "contention_free":
        np.testing.assert_array_equal(realized.start, plan.start)
        np.testing.assert_array_equal(realized.finish, plan.finish)
    else:
        # Sharing links only delays transfers, and a fixed plan's times are monotone in them.
        assert np.all(realized.start >= plan.start - TOL * np.maximum(plan.start, 1.0))
        assert np.all(realized.finish >= plan.finish - TOL * np.maximum(plan.finish, 1.0))


@SETTINGS
@given(problems(), st.booleans(), st.integers(0, 2**31 - 1), st.floats(0.05, 1.0))
def test_noisy_execution_is_valid_and_seeded(
    problem: Problem, insertion: bool, seed: int, sigma: float
):
    plan = random_plan(problem, insertion, seed)[0].plan()
    a = execute(plan, noise=sigma, rng=np.random.default_rng(seed))
    b = execute(plan, noise=sigma, rng=np.random.default_rng(seed))
    check_valid(a)
    np.testing.assert_array_equal(a.finish, b.finish)
    # each node still starts its tasks in the plan's order
    for n in range(problem.n_nodes):
        order = plan.node_order(n)
        assert np.all(np.diff(a.start[order]) >= 0)


def _brute_tails(prof: _NodeProfile, cmax: int) -> list[float]:
    out = [0.0 if c <= prof.cap else float("inf") for c in range(cmax + 1)]
    for k in range(len(prof.times) - 1):
        for c in range(1, min(prof.cap, cmax) + 1):
            if prof.usage[k] > prof.cap - c:
                out[c] = max(out[c], prof.times[k + 1])
    return out


def _brute_window(prof: _NodeProfile) -> float:
    best, open_at = 0.0, -1.0
    times, usage = prof.times, prof.usage
    for k in range(len(times) - 1):
        if usage[k] < prof.cap:
            if open_at < 0:
                open_at = times[k]
        elif open_at >= 0:
            best, open_at = max(best, times[k] - open_at), -1.0
    return max(best, times[-1] - open_at) if open_at >= 0 else best


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 4),
    st.lists(
        st.tuples(
            st.integers(0, 12), st.integers(1, 5), st.integers(1, 4), st.sampled_from([0, 3, 6])
        ),
        max_size=25,
    ),
)
def test_profile_summaries_match_a_full_recount(cap: int, adds: list) -> None:
    """tails, the longest window with a core free, and the memory tails are kept incrementally;
    they must equal a recount over the whole step function after every placement."""
    cmax = 4
    mem_cap = 10
    prof = _NodeProfile(cap, cmax, mem_cap)
    for s, d, c, m in adds:
        if c > cap:
            continue
        start = prof.earliest_fit(float(s), float(d), c, m)
        prof.add(start, start + d, c, m)
        assert prof.tail == _brute_tails(prof, cmax)
        assert prof.max_window() == _brute_window(prof)
        used = prof.mem or [0] * len(prof.times)
        assert max(used) <= mem_cap and max(prof.usage) <= cap
        for need in range(1, mem_cap + 1):
            want = max(
                [0.0]
                + [prof.times[k + 1] for k in range(len(used) - 1) if used[k] > mem_cap - need]
            )
            assert prof.mem_tail(need) == want
