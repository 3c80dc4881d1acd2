"""Property tests (hypothesis) of the simulator over random DAGs, clusters and placements."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wass_env.sim import Cluster, PlanBuilder, Problem, Schedule, Workflow, execute

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
    wf = Workflow.from_arrays(
        work,
        np.asarray(edges, dtype=np.int64).reshape(-1, 2),
        nbytes,
        cores=cores,
        input_bytes=stage,
    )
    speeds = draw(st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=n_nodes, max_size=n_nodes))
    cl = Cluster(
        speeds,
        node_cores,
        bandwidth=draw(st.sampled_from([10.0, 100.0])),
        latency=draw(st.sampled_from([0.0, 0.25])),
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
    for s in sorted({lo} | {float(b.finish[i]) for i in placed if b.finish[i] > lo}):
        points = {s} | {float(b.start[i]) for i in placed if s < b.start[i] < s + d}
        if all(
            sum(int(wf.cores[i]) for i in placed if b.start[i] <= x < b.finish[i]) + wf.cores[t]
            <= cap
            for x in points
        ):
            return s
    raise AssertionError("no feasible start found")


def check_valid(s: Schedule) -> None:
    """Precedence with transfer delays and per-node core capacity."""
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
    np.testing.assert_array_equal(realized.start, plan.start)
    np.testing.assert_array_equal(realized.finish, plan.finish)


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
