"""CP-SAT optimum: obvious optima, replay in the simulator, bounds, never worse than HEFT."""

from __future__ import annotations

import numpy as np
import pytest
from test_heuristics import HEURISTICS, assert_valid_plan, random_problem

from agents.cpsat import TARGET_TICKS, CPSATScheduler, InstanceTooLargeError
from agents.heft import HEFTScheduler
from agents.registry import make_scheduler
from wass_env.sim import Cluster, PlanBuilder, Problem, Workflow, execute

LIMIT = 5.0  # [s] per solve; the instances here are proven optimal in a fraction of that


def _check(problem: Problem, **kwargs: float) -> tuple[CPSATScheduler, float]:
    """Solve, and check what every result must satisfy; return the scheduler and makespan."""
    sched = CPSATScheduler(time_limit=LIMIT, **kwargs)  # type: ignore[arg-type]
    res = sched.solve(problem)
    assert_valid_plan(res.plan, problem)
    assert execute(res.plan).makespan == res.makespan  # the reported makespan replays exactly
    assert res.makespan <= res.heft_makespan
    assert res.heft_makespan == HEFTScheduler().plan(problem).makespan
    assert res.lower_bound <= res.makespan + 1e-9
    assert res.makespan >= problem.lower_bound() - 1e-9
    return sched, res.makespan


def test_chain_with_costly_communication_stays_on_fastest_node() -> None:
    # Chain of 5 tasks (25 s of work); nodes of speed 1, 2, 0.5; every transfer costs 100 s.
    # Any move costs more than the whole chain, so the optimum runs it all on the speed-2 node:
    # 25 / 2 = 12.5 s. HEFT finds it too (the first task is fastest there, and staying is free).
    wf = Workflow.from_arrays(
        [4.0, 6.0, 2.0, 8.0, 5.0], [[0, 1], [1, 2], [2, 3], [3, 4]], [100.0] * 4
    )
    problem = Problem(wf, Cluster([1.0, 2.0, 0.5], 1, bandwidth=1.0, latency=0.0))
    sched, makespan = _check(problem)
    res = sched.last_result
    assert res is not None and makespan == 12.5 and res.heft_makespan == 12.5
    assert res.plan.node.tolist() == [1] * 5
    assert res.status == "OPTIMAL" and not res.rounded and res.optimal
    assert res.ticks_per_second == 10.0  # 2.5 s is the first non-integer: tenths are exact
    assert res.objective == 12.5 and res.bound == 12.5


def test_independent_equal_tasks_balance_the_load() -> None:
    # 6 tasks of 10 s on 3 identical single-core nodes: 2 per node, 20 s.
    problem = Problem(Workflow.from_arrays(np.full(6, 10.0)), Cluster(np.ones(3), 1))
    sched, makespan = _check(problem)
    assert makespan == 20.0
    assert np.bincount(sched.last_result.plan.node).tolist() == [2, 2, 2]  # type: ignore[union-attr]
    assert sched.last_result.status == "OPTIMAL"  # type: ignore[union-attr]
    assert HEFTScheduler().plan(problem).makespan == 20.0


def test_cores_are_a_cumulative_resource() -> None:
    # One 4-core node. A and B need 3 cores (10 s each) and cannot overlap; C needs 1 core for
    # 20 s and runs beside both: optimum 20 s (the work bound (30 + 30 + 20) / 4 = 20 too).
    wf = Workflow.from_arrays([10.0, 10.0, 20.0], cores=[3, 3, 1])
    problem = Problem(wf, Cluster([1.0], [4]))
    sched, makespan = _check(problem)
    assert makespan == 20.0 and sched.last_result.status == "OPTIMAL"  # type: ignore[union-attr]
    s = sched.last_result.plan.start  # type: ignore[union-attr]
    assert sorted(s[:2].tolist()) == [0.0, 10.0]


def test_per_link_transfer_times_and_stage_in() -> None:
    # a needs 2 cores (only node 0 has them), b needs 5 bytes of memory (node 0 has 2): a runs
    # on node 0, b on node 1 or 2. a reads 2 bytes from shared storage at 1 byte/s (stage-in
    # 2 s) and runs 10 s. b runs 5 s on node 1, 10 s on node 2; a's 40 bytes take 1 + 40 / 2 =
    # 21 s over the link 0 -> 1 and 0 + 40 / 40 = 1 s over 0 -> 2. Node 1: 2 + 10 + 21 + 5 = 38;
    # node 2: 2 + 10 + 1 + 10 = 23 -> optimum 23 on node 2.
    wf = Workflow.from_arrays(
        [10.0, 10.0], [[0, 1]], [40.0], cores=[2, 1], memory=[1.0, 5.0], input_bytes=[2.0, 0.0]
    )
    bw = np.array([[1.0, 2.0, 40.0], [2.0, 1.0, 1.0], [40.0, 1.0, 1.0]])
    lat = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    cl = Cluster([1.0, 1.0, 1.0], [2, 1, 1], [2.0, 8.0, 8.0], bandwidth=bw, latency=lat,
                 storage_bandwidth=1.0, storage_latency=0.0)  # fmt: skip
    problem = Problem(wf, cl, cost_matrix=[[10.0, 10.0, 10.0], [5.0, 5.0, 10.0]])
    assert problem.fits.tolist() == [[True, False, False], [False, True, True]]
    sched, makespan = _check(problem)
    assert makespan == 23.0
    assert sched.last_result.plan.node.tolist() == [0, 2]  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", range(6))
def test_optimal_on_integral_instances_beats_every_heuristic(seed: int) -> None:
    # Integer runtimes and transfer times make the integer model exact, so the proven optimum
    # is at most the makespan of any valid plan, each heuristic's included.
    problem = random_problem(100 + seed, n_tasks=10, n_nodes=3, integral=True)
    sched, makespan = _check(problem)
    res = sched.last_result
    assert res is not None and res.status == "OPTIMAL" and not res.rounded
    assert res.ticks_per_second == 1.0
    assert res.lower_bound == res.makespan == res.objective
    for name in HEURISTICS:
        for insertion in (True, False):
            other = make_scheduler(name, seed=seed).plan(problem, insertion=insertion)
            assert makespan <= other.makespan + 1e-9, name


@pytest.mark.parametrize("seed", range(4))
def test_rounded_model_still_replays_and_bounds(seed: int) -> None:
    # Real-valued costs on a coarse 1-tick-per-second grid: durations are rounded up, the plan
    # is rebuilt in the simulator and can only be shorter than the solver's objective.
    problem = random_problem(200 + seed, n_tasks=12, n_nodes=3, matrix_network=seed % 2 == 1)
    sched, makespan = _check(problem, ticks_per_second=1.0)
    res = sched.last_result
    assert res is not None and res.rounded and not res.optimal
    if res.status != "HEFT":
        assert makespan <= res.objective + 1e-9
    assert res.lower_bound <= res.bound


def test_falls_back_to_heft_when_rounding_makes_the_solution_worse() -> None:
    # On a 20-second grid every runtime rounds up to 20 s or more, so the model's optimum can
    # replay worse than HEFT in the simulator; then HEFT's own plan is returned.
    statuses = set()
    for seed in range(500, 504):
        problem = random_problem(seed, n_tasks=10, n_nodes=3)
        res = CPSATScheduler(time_limit=LIMIT, ticks_per_second=0.05).solve(problem)
        heft = HEFTScheduler().plan(problem)
        statuses.add(res.status)
        assert res.makespan <= heft.makespan
        if res.status == "HEFT":
            np.testing.assert_array_equal(res.plan.node, heft.node)
            np.testing.assert_array_equal(res.plan.start, heft.start)
        assert_valid_plan(res.plan, problem)
    assert "HEFT" in statuses


def test_default_resolution_for_real_valued_costs() -> None:
    problem = random_problem(300, n_tasks=12, n_nodes=3)
    sched, _ = _check(problem)
    res = sched.last_result
    assert res is not None and res.rounded
    # The smallest power of ten giving HEFT's makespan at least TARGET_TICKS ticks.
    assert res.heft_makespan * res.ticks_per_second >= TARGET_TICKS
    assert res.heft_makespan * res.ticks_per_second / 10 < TARGET_TICKS


def test_queue_policy_plan_is_valid_and_no_worse_than_heft() -> None:
    problem = random_problem(7, n_tasks=12, n_nodes=3)
    res = CPSATScheduler(time_limit=LIMIT).solve(problem, insertion=False)
    assert not res.plan.insertion
    assert_valid_plan(res.plan, problem)
    assert execute(res.plan).makespan == res.makespan
    assert res.makespan <= HEFTScheduler().plan(problem, insertion=False).makespan


def test_same_seed_same_solution() -> None:
    problem = random_problem(5, n_tasks=12, n_nodes=4)
    a = CPSATScheduler(time_limit=LIMIT, seed=3).plan(problem)
    b = CPSATScheduler(time_limit=LIMIT, seed=3).plan(problem)
    np.testing.assert_array_equal(a.node, b.node)
    np.testing.assert_array_equal(a.start, b.start)


def test_stepwise_use_follows_the_solution() -> None:
    problem = random_problem(6, n_tasks=10, n_nodes=3)
    sched = CPSATScheduler(time_limit=LIMIT)
    plan = sched.plan(problem)
    b = PlanBuilder(problem, insertion=True)
    for t in np.argsort(plan.decision).tolist():
        assert sched.select_node(b, t) == plan.node[t]
        b.assign(t, int(plan.node[t]))


def test_refuses_large_instances_unless_forced() -> None:
    wf = Workflow.from_arrays(np.ones(41), [[i, i + 1] for i in range(40)])
    problem = Problem(wf, Cluster(np.ones(2), 1))
    with pytest.raises(InstanceTooLargeError, match=r"41 tasks on 2 nodes.*40 tasks and 8 nodes"):
        CPSATScheduler().plan(problem)
    assert issubclass(InstanceTooLargeError, ValueError)
    # A 41-task chain on identical nodes: 41 s, found at once when forced.
    assert CPSATScheduler(time_limit=LIMIT, force=True).plan(problem).makespan == 41.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"time_limit": 0.0}, "time_limit"),
        ({"workers": 0}, "workers"),
        ({"ticks_per_second": -1.0}, "ticks_per_second"),
        ({"deterministic_time": 0.0}, "deterministic_time"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CPSATScheduler(**kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_thirty_tasks_never_worse_than_heft(seed: int) -> None:
    problem = random_problem(400 + seed, n_tasks=30, n_nodes=4)
    res = CPSATScheduler(time_limit=20.0).solve(problem)
    assert_valid_plan(res.plan, problem)
    assert execute(res.plan).makespan == res.makespan <= res.heft_makespan
    assert res.lower_bound <= res.makespan


def test_memory_is_a_cumulative_resource() -> None:
    # Three 10 s tasks of 300 GiB on two 512 GiB, 16-core nodes: at most one per node at a time,
    # so the optimum is 20 s (two in a row on one node, one on the other). Without the memory
    # limit all three would run at once in 10 s.
    gib = 1024.0**3
    wf = Workflow.from_arrays([10.0, 10.0, 10.0], memory=[300 * gib] * 3)
    problem = Problem(wf, Cluster([1.0, 1.0], [16, 16], [512 * gib, 512 * gib]))
    sched, makespan = _check(problem)
    res = sched.last_result
    assert res is not None and res.optimal and makespan == 20.0
    for n in range(2):
        on = np.flatnonzero(res.plan.node == n)
        for a in on:
            overlap = (res.plan.start[on] < res.plan.finish[a]) & (
                res.plan.finish[on] > res.plan.start[a]
            )
            assert int(overlap.sum()) == 1  # only itself
    roomy = Problem(wf, Cluster([1.0, 1.0], [16, 16]))
    assert _check(roomy)[1] == 10.0


def test_memory_units_stay_small_for_cp_sat() -> None:
    from agents.cpsat import _memory_units

    gib = 1024**3
    exact = Problem(
        Workflow.from_arrays([1.0, 1.0], memory=[300 * gib, 200 * gib]),
        Cluster([1.0], [2], [512 * gib]),
    )
    assert _memory_units(exact) == ([75, 50], [128], False)  # divided by the gcd, 4 GiB
    odd = Problem(
        Workflow.from_arrays([1.0], memory=[2.0**40 + 1]), Cluster([1.0], [2], [2.0**41 + 3])
    )
    dem, caps, rounded = _memory_units(odd)
    assert rounded and max(dem[0], caps[0] or 0) <= 2**31
    unit = -(-(2**41 + 3) // 2**31)
    assert dem == [-(-(2**40 + 1) // unit)] and caps == [(2**41 + 3) // unit]
