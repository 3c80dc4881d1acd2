"""Every scheduler: valid complete plans, step-wise use equal to whole-workflow use, determinism;
hand-computed decisions of Min-Min/Max-Min, data locality and round-robin; the registry.

:func:`assert_valid_plan` is the one validity checker of the scheduler tests (the CP-SAT and
known-answer tests import it). It re-derives every constraint from the problem's raw fields,
without the simulator's planning code.
"""

from __future__ import annotations

import numpy as np
import pytest

from agents.cpsat import CPSATScheduler
from agents.heft import HEFTScheduler
from agents.heuristics import (
    DataLocalityScheduler,
    RoundRobinScheduler,
    argmin_first,
    snap_priority,
)
from agents.minmin import MaxMinScheduler, MinMinScheduler
from agents.registry import SCHEDULERS, UnknownSchedulerError, make_scheduler, scheduler_names
from wass_env.sim import Cluster, Plan, PlanBuilder, Problem, Schedule, Workflow, execute

TOL = 1e-9  # [s] float slack of the checks


# ---------------------------------------------------------------------- the shared checker
def assert_valid_plan(sched: Schedule, problem: Problem | None = None) -> None:
    """Assert that ``sched`` is a complete, feasible schedule of ``problem``.

    Checks: every task on an existing node it fits on (cores and memory); runtime equal to the
    problem's cost of that task on that node; start after the stage-in of its external inputs;
    start after every parent's finish plus the transfer time (latency + bytes / bandwidth of that
    link, zero within a node); at no time more cores busy on a node than it has (zero-length tasks
    take none).
    """
    p = problem if problem is not None else sched.problem
    wf, cl = p.workflow, p.cluster
    n_t = wf.n_tasks
    node, start, finish = sched.node, sched.start, sched.finish
    assert node.shape == start.shape == finish.shape == (n_t,)
    assert np.all(np.isfinite(start)) and np.all(np.isfinite(finish)), "incomplete plan"
    assert np.all((node >= 0) & (node < cl.n_nodes)), "task on a non-existent node"
    for t in range(n_t):
        n = int(node[t])
        assert wf.cores[t] <= cl.cores[n] and wf.memory[t] <= cl.memory[n], f"task {t} misfit"
        assert abs((finish[t] - start[t]) - p.exec_time[t, n]) <= TOL * max(1.0, finish[t])
        stage = 0.0
        if wf.input_bytes[t] > 0:
            stage = cl.storage_latency + wf.input_bytes[t] / cl.storage_bandwidth
        assert start[t] >= stage - TOL, f"task {t} starts before its stage-in"
        assert start[t] >= -TOL
    for e in range(wf.n_edges):
        a, b = int(wf.edge_src[e]), int(wf.edge_dst[e])
        na, nb = int(node[a]), int(node[b])
        delay = 0.0
        if na != nb:
            delay = cl.latency_matrix[na, nb] + wf.edge_bytes[e] / cl.bandwidth_matrix[na, nb]
        assert start[b] >= finish[a] + delay - TOL * max(1.0, finish[a] + delay), (
            f"edge {a}->{b}: child starts at {start[b]}, data arrives at {finish[a] + delay}"
        )
    for n in range(cl.n_nodes):
        on = [t for t in range(n_t) if node[t] == n and finish[t] - start[t] > TOL]
        for t in on:  # usage is highest at some task's start
            busy = sum(
                int(wf.cores[u])
                for u in on
                if start[u] <= start[t] + TOL and finish[u] > start[t] + TOL
            )
            assert busy <= cl.cores[n], f"node {n} runs {busy} > {cl.cores[n]} cores at {start[t]}"


def test_checker_rejects_broken_plans() -> None:
    """The checker is only worth something if it fails: break a valid plan three ways."""
    wf = Workflow.from_arrays([2.0, 3.0, 1.0], [[0, 1]], [4.0])
    problem = Problem(wf, Cluster([1.0, 1.0], [1, 1], bandwidth=2.0, latency=0.5))
    ok = Plan.from_assignment(problem, np.array([0, 1, 0]))
    # 0 on n0 [0, 2]; edge 0 -> 1 arrives on n1 at 2 + 0.5 + 4 / 2 = 4.5; 2 on n0 [2, 3].
    assert ok.start.tolist() == [0.0, 4.5, 2.0]
    assert_valid_plan(ok)

    def broken(**change: np.ndarray) -> Schedule:
        fields = {"node": ok.node, "start": ok.start, "finish": ok.finish} | change
        return Schedule(problem=problem, release=ok.release, **fields)

    with pytest.raises(AssertionError, match="data arrives"):  # child before its input
        assert_valid_plan(broken(start=np.array([0.0, 4.0, 2.0]), finish=np.array([2, 7, 3.0])))
    with pytest.raises(AssertionError, match="cores"):  # tasks 0 and 2 overlap on 1 core
        assert_valid_plan(broken(start=np.array([0.0, 4.5, 1.0]), finish=np.array([2, 7.5, 2])))
    with pytest.raises(AssertionError):  # runtime shorter than the cost
        assert_valid_plan(broken(finish=np.array([1.0, 7.5, 3.0])))


# ---------------------------------------------------------------------- instances
def random_problem(
    seed: int,
    n_tasks: int = 14,
    n_nodes: int = 4,
    *,
    matrix_network: bool = False,
    integral: bool = False,
) -> Problem:
    """A small layered DAG on a heterogeneous cluster, with the awkward cases mixed in.

    Multi-core tasks, a task too big for some nodes (memory), external inputs, a zero-work
    task, nodes of 1 to 4 cores; optionally a per-link network and integer-valued durations.
    """
    rng = np.random.default_rng(seed)
    work = rng.integers(1, 20, n_tasks).astype(float) if integral else rng.uniform(1, 20, n_tasks)
    work[n_tasks // 2] = 0.0
    layer = np.sort(rng.integers(0, max(2, n_tasks // 3), n_tasks))
    layer[0] = 0
    edges = [
        (i, j)
        for j in range(n_tasks)
        for i in range(j)
        if layer[i] < layer[j] and rng.random() < 0.35
    ]
    nbytes = (
        rng.integers(0, 8, len(edges)).astype(float) if integral else rng.uniform(0, 8, len(edges))
    )
    cores = rng.choice([1, 1, 1, 2], n_tasks)
    memory = np.ones(n_tasks)
    memory[1] = 10.0  # fits only on the big-memory nodes
    inputs = np.zeros(n_tasks)
    inputs[0] = 3.0  # [bytes] read from shared storage
    wf = Workflow.from_arrays(
        work,
        np.asarray(edges).reshape(-1, 2),
        nbytes,
        cores=cores,
        memory=memory,
        input_bytes=inputs,
        name=f"random{seed}",
    )
    speed = rng.choice([1.0, 2.0, 0.5], n_nodes) if not integral else np.ones(n_nodes)
    node_cores = np.resize([2, 1, 4, 2], n_nodes)
    node_mem = np.resize([16.0, 4.0, 4.0, 16.0], n_nodes)
    if matrix_network:
        bw = rng.uniform(0.5, 2.0, (n_nodes, n_nodes))
        lat = rng.uniform(0.0, 0.5, (n_nodes, n_nodes))
        cl = Cluster(speed, node_cores, node_mem, bandwidth=bw, latency=lat, storage_bandwidth=1.0)
    else:
        cl = Cluster(
            speed,
            node_cores,
            node_mem,
            bandwidth=1.0,
            latency=0.0 if integral else 0.2,
            storage_bandwidth=1.0,
            storage_latency=0.0,
        )
    cost = None
    if integral:  # integer runtimes that differ per node
        cost = np.maximum(0, np.round(work[:, None] * rng.choice([0.5, 1.0, 2.0], n_nodes)))
    return Problem(wf, cl, cost_matrix=cost)


PROBLEMS = {
    "scalar": random_problem(1),
    "matrix": random_problem(2, matrix_network=True),
    "integral": random_problem(3, integral=True),
    "wide": random_problem(4, n_tasks=24, n_nodes=6),
}
#: Every registered scheduler that needs no arguments (trained policies need a checkpoint).
STANDALONE = scheduler_names(standalone=True)
HEURISTICS = sorted(set(STANDALONE) - {"cpsat"})


def _make(name: str, seed: int = 0) -> object:
    if name == "cpsat":
        return make_scheduler(name, time_limit=5.0, seed=seed)
    return make_scheduler(name, seed=seed)


# ---------------------------------------------------------------------- every scheduler
@pytest.mark.parametrize("insertion", [True, False])
@pytest.mark.parametrize("pname", sorted(PROBLEMS))
@pytest.mark.parametrize("name", HEURISTICS)
def test_plan_is_complete_valid_and_replayed_exactly(
    name: str, pname: str, insertion: bool
) -> None:
    problem = PROBLEMS[pname]
    plan = make_scheduler(name, seed=0).plan(problem, insertion=insertion)
    assert isinstance(plan, Plan)
    assert sorted(plan.decision.tolist()) == list(range(problem.n_tasks))
    assert_valid_plan(plan, problem)
    assert plan.makespan >= problem.lower_bound() - TOL
    realized = execute(plan)
    np.testing.assert_allclose(realized.start, plan.start, rtol=0, atol=1e-9)
    np.testing.assert_allclose(realized.finish, plan.finish, rtol=0, atol=1e-9)


@pytest.mark.parametrize("pname", ["scalar", "integral"])
@pytest.mark.parametrize("name", STANDALONE)
def test_stepwise_use_equals_plan(name: str, pname: str) -> None:
    """Driving a builder with ``select_node`` in the plan's placement order gives the same plan."""
    problem = PROBLEMS[pname]
    plan = _make(name).plan(problem)  # type: ignore[attr-defined]
    step = _make(name)
    builder = PlanBuilder(problem, insertion=True)
    for t in np.argsort(plan.decision).tolist():
        builder.assign(t, step.select_node(builder, t))  # type: ignore[attr-defined]
    again = builder.plan()
    np.testing.assert_array_equal(again.node, plan.node)
    np.testing.assert_array_equal(again.start, plan.start)


@pytest.mark.parametrize("name", STANDALONE)
def test_same_seed_same_plan(name: str) -> None:
    problem = PROBLEMS["matrix"]
    a = _make(name, seed=7).plan(problem)  # type: ignore[attr-defined]
    sched = _make(name, seed=7)
    b = sched.plan(problem)  # type: ignore[attr-defined]
    sched.reset(7)  # re-seeding replays the same decisions
    c = sched.plan(problem)  # type: ignore[attr-defined]
    for other in (b, c):
        np.testing.assert_array_equal(other.node, a.node)
        np.testing.assert_array_equal(other.start, a.start)


def test_random_depends_on_seed() -> None:
    problem = PROBLEMS["wide"]
    nodes = {tuple(make_scheduler("random", seed=s).plan(problem).node.tolist()) for s in range(4)}
    assert len(nodes) > 1


# ---------------------------------------------------------------------- hand examples
def _independent(cost: list[list[float]]) -> Problem:
    c = np.asarray(cost, dtype=float)
    wf = Workflow.from_arrays(c.mean(axis=1), ids=[f"t{i}" for i in range(len(c))])
    cl = Cluster(np.ones(c.shape[1]), 1, bandwidth=1.0, latency=0.0)
    return Problem(wf, cl, cost_matrix=c)


def test_min_min_and_max_min_by_hand() -> None:
    # Runtimes [s] on P0, P1 (single-core nodes), independent tasks a, b, c.
    problem = _independent([[10, 20], [1, 2], [1, 2]])
    # Min-Min. Best finishes: a 10 (P0), b 1 (P0), c 1 (P0): b (lowest index of the tie) on P0
    # [0, 1]. Then a: P0 11, P1 20 -> 11; c: P0 2, P1 2 -> tie, P0, 2: c on P0 [1, 2]. Then a:
    # P0 12, P1 20 -> P0 [2, 12]. Makespan 12.
    mm = MinMinScheduler().plan(problem)
    assert np.argsort(mm.decision).tolist() == [1, 2, 0]
    assert mm.node.tolist() == [0, 0, 0]
    assert mm.start.tolist() == [2.0, 0.0, 1.0]
    assert mm.makespan == 12.0
    # Max-Min. Best finishes a 10, b 1, c 1: a (largest) on P0 [0, 10]. Then b: P0 11, P1 2 -> 2;
    # c: the same -> tie, b first, on P1 [0, 2]. Then c: P0 11, P1 4 -> P1 [2, 4]. Makespan 10.
    xm = MaxMinScheduler().plan(problem)
    assert np.argsort(xm.decision).tolist() == [0, 1, 2]
    assert xm.node.tolist() == [0, 1, 1]
    assert xm.start.tolist() == [0.0, 0.0, 2.0]
    assert xm.makespan == 10.0


def _fan_in(bytes_a: float, bytes_b: float, cost_c: list[float]) -> PlanBuilder:
    """Parents a (placed on node 0, [0, 1]) and b (node 1, [0, 1]) feeding c, 3 nodes.

    Bandwidth 1 byte/s, no latency: an edge of k bytes arrives k seconds after its parent ends.
    ``cost_c``: runtime of c on each node [s].
    """
    wf = Workflow.from_arrays([1.0, 1.0, 1.0], [[0, 2], [1, 2]], [bytes_a, bytes_b])
    cl = Cluster([1.0, 1.0, 1.0], 1, bandwidth=1.0, latency=0.0)
    problem = Problem(wf, cl, cost_matrix=[[1, 1, 1], [1, 1, 1], cost_c])
    b = PlanBuilder(problem, insertion=True)
    b.assign(0, 0)
    b.assign(1, 1)
    return b


def test_data_locality_picks_node_holding_most_input_bytes() -> None:
    # a -> c carries 10 bytes (on node 0), b -> c 30 bytes (on node 1). c on node 0: b's data
    # arrives at 1 + 30 = 31, finish 31 + 1 = 32; on node 1: a's at 1 + 10 = 11, finish
    # 11 + 25 = 36; on node 2: 31 + 25 = 56. EFT would take node 0; locality takes node 1.
    b = _fan_in(10.0, 30.0, [1.0, 25.0, 25.0])
    assert b.earliest_finish(2).tolist() == [32.0, 36.0, 56.0]
    assert DataLocalityScheduler().select_node(b, 2) == 1
    assert HEFTScheduler().select_node(b, 2) == 0


def test_data_locality_ties_by_finish_time_then_index() -> None:
    # 10 bytes on each of nodes 0 and 1: both get the other input at 11. c takes 5 s on node 0
    # and 3 s on node 1: finishes 16 vs 14 -> node 1.
    b = _fan_in(10.0, 10.0, [5.0, 3.0, 1.0])
    assert DataLocalityScheduler().select_node(b, 2) == 1
    # Equal runtimes: both finish at 16 -> the lower index, node 0 (node 2, holding no input,
    # would finish first: 11 + 1 = 12, but it is not a locality candidate).
    b = _fan_in(10.0, 10.0, [5.0, 5.0, 1.0])
    assert b.earliest_finish(2).tolist() == [16.0, 16.0, 12.0]
    assert DataLocalityScheduler().select_node(b, 2) == 0


def test_round_robin_cycles_and_skips_nodes_a_task_does_not_fit() -> None:
    # 7 independent tasks on 3 nodes; task 4 needs 2 cores, which only node 0 has.
    wf = Workflow.from_arrays(np.ones(7), cores=[1, 1, 1, 1, 2, 1, 1])
    problem = Problem(wf, Cluster([1.0, 1.0, 1.0], [2, 1, 1]))
    rr = RoundRobinScheduler()
    plan = rr.plan(problem)
    order = np.argsort(plan.decision).tolist()
    assert order == list(range(7))  # equal ranks: index order
    # 0 -> n0, 1 -> n1, 2 -> n2, 3 -> n0, 4 (2 cores) skips n1, n2 -> n0, 5 -> n1, 6 -> n2.
    assert plan.node.tolist() == [0, 1, 2, 0, 0, 1, 2]
    # A new plan starts again at node 0, and so does a fresh builder in step-wise use.
    assert rr.plan(problem).node.tolist() == plan.node.tolist()
    b = PlanBuilder(problem)
    assert rr.select_node(b, 0) == 0


def test_tie_helpers() -> None:
    assert argmin_first(np.array([3.0, 1.0 + 1e-13, 1.0, np.inf])) == 1
    assert argmin_first(np.array([np.inf, 2.0, 1.0])) == 2
    with pytest.raises(ValueError, match="no finite value"):
        argmin_first(np.array([np.inf, np.inf]))
    # 80 computed two ways (as in HEFT's ranks) and a value that really differs.
    a = 14 + 1 / 3 + 65 + 2 / 3
    b = 12 + 2 / 3 + 67 + 1 / 3
    snapped = snap_priority(np.array([a, b, 80.001, 108.0]))
    assert snapped[0] == snapped[1] and snapped[2] > snapped[1]


# ---------------------------------------------------------------------- registry
def test_registry_names_match_classes() -> None:
    assert set(SCHEDULERS) == {
        "random",
        "round_robin",
        "slurm",
        "data_locality",
        "heft",
        "heft_contention",
        "cpop",
        "peft",
        "min_min",
        "max_min",
        "cpsat",
        "single_node",
        "heft_lookahead",
        "best_heuristic",
        "portfolio",
        "plan_portfolio",
        "improved_portfolio",
        "policy",
        "teacher",
    }
    assert set(STANDALONE) == set(SCHEDULERS) - {"policy", "teacher"}
    for name, cls in SCHEDULERS.items():
        assert cls.name == name
    s = make_scheduler("cpsat", time_limit=2.5)
    assert isinstance(s, CPSATScheduler) and s.time_limit == 2.5


def test_unknown_scheduler_lists_valid_names() -> None:
    with pytest.raises(UnknownSchedulerError, match=r"'hefty'.*cpop.*heft.*round_robin") as exc:
        make_scheduler("hefty")
    assert isinstance(exc.value, ValueError)


def test_slurm_submission_order_with_backfilling() -> None:
    # One node, 2 cores, 1 s per unit of work. File order: t0 (1 core, 10 s), t1 (2 cores, 2 s),
    # t2 (1 core, 3 s), all entry tasks. t0 starts at 0; t1 needs both cores: 10..12. t2 was
    # submitted after t1 but fits in the free core at 0: backfilled. Without insertion, nothing
    # starts before the latest start on the node (10), and t2 waits for a core: 12..15.
    from agents.baselines import SlurmScheduler

    wf = Workflow(ids=["t0", "t1", "t2"], work=[10.0, 2.0, 3.0], cores=[1, 2, 1], name="bf")
    problem = Problem(wf, Cluster(speed=[1.0], cores=[2], name="one"))
    backfill = SlurmScheduler().plan(problem)
    assert backfill.start.tolist() == [0.0, 10.0, 0.0] and backfill.makespan == 12.0
    queue = SlurmScheduler().plan(problem, insertion=False)
    assert queue.start.tolist() == [0.0, 10.0, 12.0] and queue.makespan == 15.0
