"""The SimGrid reference module itself: translation of plans, agreement measure, test DAGs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from wass_env.sim import Cluster, Plan, Problem, Schedule, Workflow, execute
from wass_env.sim.reference import (
    REFERENCE_SPEED,
    TIME_FLOOR,
    SimGridUnavailable,
    agreement,
    plan_case,
    replay,
    stress_workflow,
)


def _two_node_plan() -> Plan:
    wf = Workflow.from_arrays(
        [3.0, 1.5, 0.0],
        [(0, 1), (0, 2)],
        [1e6 + 0.3, 7.0],
        cores=[2, 1, 4],
        input_bytes=[12.5, 0.0, 0.0],
    )
    cl = Cluster([0.5, 2.0], [4, 4], bandwidth=1e6, latency=1e-3)
    return Plan.from_assignment(Problem(wf, cl), np.array([0, 1, 0]))


def test_plan_case_units() -> None:
    case = plan_case(_two_node_plan())
    # Speed and work are scaled by the same power of two: flops / speed is the exact runtime.
    assert case["speed"] == [0.5 * 2**30, 2.0 * 2**30]
    assert case["flops"] == [3.0 * 2**30, 1.5 * 2**30, 0.0]
    assert REFERENCE_SPEED == 2.0**30
    # The largest byte count, 1e6 + 0.3, lies in [2**19, 2**20): bytes are scaled by
    # 2**(52 - 20) = 2**32, so that count is below 2**52, and rounded to integers.
    k = 32
    assert case["edge_bytes"][0] == round((1e6 + 0.3) * 2**k)
    assert case["edge_bytes"][1] == 7 * 2**k
    assert case["input_bytes"] == [round(12.5 * 2**k), 0, 0]
    assert case["bandwidth"][0][1] == 1e6 * 2**k
    assert case["latency"][0][1] == 1e-3
    assert case["order"] == [[0, 2], [1]]
    assert case["task_cores"] == [2, 1, 4]


def test_plan_case_keeps_byte_counts_exact_in_a_double() -> None:
    wf = Workflow.from_arrays([1.0, 1.0, 1.0], [(0, 1), (0, 2)], [3e12 + 0.25, 1.0 / 3.0])
    cl = Cluster([1.0, 1.0], [1, 1])
    case = plan_case(Plan.from_assignment(Problem(wf, cl), np.array([0, 1, 1])))
    # 3e12 lies in [2**41, 2**42): scaled by 2**(52 - 42) = 2**10 it stays below 2**52, and
    # 3e12 + 0.25 is a multiple of 2**-10, so it is carried exactly.
    assert case["edge_bytes"][0] == (3_000_000_000_000 * 4 + 1) * 2**8
    assert case["edge_bytes"][0] < 2**52
    # 1/3 byte is rounded to the nearest 2**-10 byte.
    assert case["edge_bytes"][1] == round(2**10 / 3)
    assert case["bandwidth"][0][1] == 1.25e9 * 2**10


def test_plan_case_with_actual_runtimes() -> None:
    plan = _two_node_plan()
    case = plan_case(plan, runtimes=[2.0, 4.0, 0.0])
    # flops = runtime x node speed x reference speed, so the host runs it in `runtime` seconds.
    assert case["flops"] == [2.0 * 0.5 * 2**30, 4.0 * 2.0 * 2**30, 0.0]
    with pytest.raises(ValueError, match="runtimes must be 3 finite values"):
        plan_case(plan, runtimes=[1.0, -1.0, 0.0])
    with pytest.raises(ValueError, match="runtimes must be 3 finite values"):
        plan_case(plan, runtimes=[1.0, 2.0])


def _schedule(plan: Plan, start: list[float], finish: list[float]) -> Schedule:
    return Schedule(plan.problem, plan.node, np.asarray(start), np.asarray(finish), plan.release)


def test_agreement_measures_relative_and_absolute_differences() -> None:
    plan = _two_node_plan()
    ref = _schedule(plan, [0.0, 2.0, 4.0], [1.0, 3.0, 4.0])
    other = _schedule(plan, [0.0, 2.0, 4.0], [1.0, 3.003, 4.0])
    a = agreement(other, ref)
    assert a.max_abs == pytest.approx(3e-3)
    assert a.max_rel == pytest.approx(1e-3)  # 3e-3 s off a finish time of 3 s
    assert a.worst_task == 1
    assert a.makespan_rel == 0.0  # the makespan (4 s) is the same
    assert agreement(ref, ref).max_rel == 0.0
    assert agreement(ref, ref).worst_task == -1


def test_agreement_compares_tiny_times_against_the_floor() -> None:
    plan = _two_node_plan()
    ref = _schedule(plan, [0.0, 2.0, 4.0], [1.0, 3.0, 4.0])
    other = _schedule(plan, [1e-12, 2.0, 4.0], [1.0, 3.0, 4.0])
    # A start of 0 in the reference: the difference counts against TIME_FLOOR = 1e-6 s.
    assert agreement(other, ref).max_rel == pytest.approx(1e-12 / TIME_FLOOR)
    assert agreement(other, ref).worst_task == 0


def test_agreement_rejects_different_plans() -> None:
    plan = _two_node_plan()
    ref = execute(plan)
    moved = Schedule(ref.problem, np.array([1, 1, 0]), ref.start, ref.finish, ref.release)
    with pytest.raises(ValueError, match="different plans"):
        agreement(moved, ref)


def test_stress_workflow_is_seeded_and_uses_every_feature() -> None:
    a = stress_workflow(300, np.random.default_rng(5))
    assert a == stress_workflow(300, np.random.default_rng(5))
    assert a != stress_workflow(300, np.random.default_rng(6))
    assert a.n_tasks == 300
    assert set(np.unique(a.cores).tolist()) == {1, 2, 4}
    assert np.any(a.work == 0.0)
    assert np.any(a.input_bytes > 0) and np.any(a.input_bytes == 0)
    assert np.any(a.edge_bytes == 0) and np.any(a.edge_bytes > 0)
    assert a.entry_tasks.size > 1 and a.exit_tasks.size > 1
    assert int(a.levels.max()) >= 10  # deep, not just wide
    with pytest.raises(ValueError, match="n_tasks >= 1"):
        stress_workflow(0, np.random.default_rng(0))


def test_replay_rejects_bad_arguments() -> None:
    plan = _two_node_plan()
    with pytest.raises(ValueError, match="topology"):
        replay([plan], topology="ring")
    with pytest.raises(ValueError, match="sharing"):
        replay([plan], sharing="unfair")
    matrix = Cluster([1.0, 1.0], [4, 4], bandwidth=[[1.0, 2e6], [3e6, 1.0]])
    irregular = Plan.from_assignment(Problem(plan.problem.workflow, matrix), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="per-pair values"):
        replay([irregular], topology="star")
    with pytest.raises(ValueError, match="runtimes has 2 entries for 1 plans"):
        replay([plan], runtimes=[None, None])
    with pytest.raises(SimGridUnavailable, match=r"install_simgrid\.sh"):
        replay([plan], python="/nonexistent/python3")


def test_batching_does_not_change_results(simgrid: str) -> None:
    rng = np.random.default_rng(11)
    cl = Cluster([1.0, 2.0, 0.5], [4, 4, 8], bandwidth=5e8, latency=1e-3)
    plans = [
        Plan.from_assignment(Problem(wf, cl), rng.integers(0, 3, wf.n_tasks))
        for wf in (stress_workflow(40, rng) for _ in range(3))
    ]
    together = replay(plans, python=simgrid).schedules
    apart = replay(plans, python=simgrid, max_tasks_per_call=1).schedules
    for x, y in zip(together, apart, strict=True):
        assert agreement(x, y).max_rel <= 1e-12
    for plan, ref in zip(plans, together, strict=True):
        assert agreement(execute(plan), ref).max_rel <= 1e-6


def test_simulator_package_does_not_import_the_reference() -> None:
    code = "import sys, wass_env.sim; print('wass_env.sim.reference' in sys.modules)"
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert res.stdout.strip() == "False"
