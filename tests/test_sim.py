"""Simulator unit tests with hand-computed schedules."""

from __future__ import annotations

import numpy as np
import pytest

from wass_env.sim import (
    Cluster,
    ClusterError,
    PlanBuilder,
    PlanError,
    Problem,
    Task,
    Workflow,
    WorkflowError,
    cluster_from_spec,
    execute,
    make_cluster,
    preset,
    schedule_metrics,
    with_ccr,
)


def place(problem: Problem, assignment: list[tuple[int, int]], insertion: bool = True):
    b = PlanBuilder(problem, insertion=insertion)
    for t, n in assignment:
        b.assign(t, n)
    return b.plan()


# ---------------------------------------------------------------- hand-computed makespans
def test_chain_on_one_fast_node():
    # 2 + 3 + 4 reference seconds on a speed-2 node: 1 + 1.5 + 2 = 4.5 s, no transfers.
    wf = Workflow.from_arrays([2.0, 3.0, 4.0], [(0, 1), (1, 2)], [1e9, 1e9])
    cl = Cluster([1.0, 2.0], [1, 1], bandwidth=1.0, latency=10.0)
    plan = place(Problem(wf, cl), [(0, 1), (1, 1), (2, 1)])
    assert plan.start.tolist() == [0.0, 1.0, 2.5]
    assert plan.makespan == 4.5


def test_chain_across_nodes_pays_each_transfer():
    # t0 on n0 [0,2); t1 on n1 after 0.5 + 100/50 = 2.5 s of transfer: [4.5, 7.5);
    # t2 back on n0 after 0.5 + 50/50: [9, 13).
    wf = Workflow.from_arrays([2.0, 3.0, 4.0], [(0, 1), (1, 2)], [100.0, 50.0])
    cl = Cluster([1.0, 1.0], [1, 1], bandwidth=50.0, latency=0.5)
    plan = place(Problem(wf, cl), [(0, 0), (1, 1), (2, 0)])
    assert plan.start.tolist() == [0.0, 4.5, 9.0]
    assert plan.makespan == 13.0


def diamond() -> tuple[Problem, list[tuple[int, int]]]:
    """A -> {B, C} -> D; A, B, D on node 0 and C on node 1 (one transfer each way)."""
    wf = Workflow.from_tasks(
        [
            Task("A", 2.0),
            Task("B", 3.0, parents={"A": 100.0}),
            Task("C", 4.0, parents={"A": 200.0}),
            Task("D", 1.0, parents={"B": 300.0, "C": 400.0}),
        ],
        name="diamond",
    )
    cl = Cluster([1.0, 1.0], [1, 1], bandwidth=100.0, latency=0.5)
    return Problem(wf, cl), [(0, 0), (1, 0), (2, 1), (3, 0)]


def test_diamond_with_cross_node_transfers():
    problem, assignment = diamond()
    plan = place(problem, assignment)
    # A [0, 2) on n0. B local: [2, 5). C on n1: A's 200 B arrive at 2 + 0.5 + 200/100 = 4.5,
    # so [4.5, 8.5). D on n0: B's data is local at 5, C's 400 B arrive at 8.5 + 0.5 + 4 = 13.
    assert plan.start.tolist() == [0.0, 2.0, 4.5, 13.0]
    assert plan.finish.tolist() == [2.0, 5.0, 8.5, 14.0]
    realized = execute(plan)
    assert realized.start.tolist() == plan.start.tolist()
    assert realized.makespan == 14.0


def test_diamond_metrics():
    problem, assignment = diamond()
    m = schedule_metrics(place(problem, assignment))
    assert m.makespan == 14.0
    assert m.cross_node_bytes == 600.0  # A->C and C->D
    assert m.locality_hit_rate == pytest.approx(400.0 / 1000.0)
    # waits (start - last parent's finish): A 0, B 0, C 4.5 - 2, D 13 - 8.5
    assert m.mean_wait == pytest.approx((0 + 0 + 2.5 + 4.5) / 4)
    assert m.utilization == pytest.approx(10.0 / (14.0 * 2))
    # critical path A-C-D = 7 > work bound 10 / 2 = 5
    assert m.lower_bound == 7.0
    assert m.slr == 2.0
    assert m.ratio_to_lower_bound == 2.0


def test_fan_out_competes_for_cores():
    # Source (1 s) -> four 2 s children on one 2-core node: two run [1, 3), two run [3, 5).
    wf = Workflow.from_arrays([1.0, 2.0, 2.0, 2.0, 2.0], [(0, i) for i in range(1, 5)])
    problem = Problem(wf, Cluster([1.0], [2]))
    plan = place(problem, [(i, 0) for i in range(5)])
    assert sorted(plan.start[1:].tolist()) == [1.0, 1.0, 3.0, 3.0]
    assert plan.makespan == 5.0
    assert schedule_metrics(plan).utilization == pytest.approx(9.0 / 10.0)


def test_multicore_task_waits_for_all_its_cores():
    # 3-core node: two 1-core tasks of 4 s and 2 s start at 0; a 2-core task of 1 s needs two
    # free cores, which first happens when the 2 s task ends.
    wf = Workflow.from_arrays([4.0, 2.0, 1.0], cores=[1, 1, 2])
    problem = Problem(wf, Cluster([1.0], [3]))
    plan = place(problem, [(0, 0), (1, 0), (2, 0)])
    assert plan.start.tolist() == [0.0, 0.0, 2.0]
    assert execute(plan).start.tolist() == [0.0, 0.0, 2.0]


def test_explicit_cost_matrix():
    # t0 -> t1 with 4 bytes at 2 B/s. Costs: t0 is 3 s on n0, 1 s on n1; t1 is 2 s on n0, 5 on n1.
    wf = Workflow.from_arrays([0.0, 0.0], [(0, 1)], [4.0])
    cl = Cluster([1.0, 1.0], [1, 1], bandwidth=2.0, latency=0.0)
    problem = Problem(wf, cl, cost_matrix=[[3.0, 1.0], [2.0, 5.0]])
    b = PlanBuilder(problem)
    assert b.earliest_finish(0).tolist() == [3.0, 1.0]
    b.assign(0, 1)
    # on n0: arrives at 1 + 4/2 = 3, finishes at 5; on n1: local at 1, finishes at 6
    assert b.earliest_finish(1).tolist() == [5.0, 6.0]
    b.assign(1, 0)
    assert b.plan().makespan == 5.0


def test_insertion_uses_idle_gap_queue_does_not():
    # On a 1-core node, X waits for data until 5 and runs [5, 7); Y (3 s, ready at 0) is placed
    # after X. Insertion puts Y into the gap [0, 3); the queue policy starts it after X.
    wf = Workflow.from_arrays([1.0, 2.0, 3.0], [(0, 1)], [400.0])
    cl = Cluster([1.0, 1.0], [1, 1], bandwidth=100.0, latency=0.0)
    problem = Problem(wf, cl)
    order = [(0, 1), (1, 0), (2, 0)]  # X = task 1 gets its input from node 1 at 1 + 4 = 5
    ins = place(problem, order, insertion=True)
    assert ins.start.tolist() == [0.0, 5.0, 0.0]
    queue = place(problem, order, insertion=False)
    assert queue.start.tolist() == [0.0, 5.0, 7.0]
    for plan in (ins, queue):  # both replay exactly
        assert execute(plan).start.tolist() == plan.start.tolist()


def test_stage_in_delays_entry_task():
    wf = Workflow.from_arrays([1.0], input_bytes=[1000.0])
    cl = Cluster([1.0], [1], storage_bandwidth=100.0, storage_latency=0.5)
    plan = place(Problem(wf, cl), [(0, 0)])
    assert plan.start[0] == 10.5
    assert Problem(wf, cl).critical_path() == 11.5


def test_zero_length_task_takes_no_cores():
    wf = Workflow.from_arrays([5.0, 0.0])
    plan = place(Problem(wf, Cluster([1.0], [1])), [(0, 0), (1, 0)])
    assert plan.start.tolist() == [0.0, 0.0]


def test_execute_with_actual_runtimes():
    problem, assignment = diamond()
    plan = place(problem, assignment)
    # C runs 6 s instead of 4: it finishes at 10.5, its data reaches n0 at 15, D ends at 16.
    realized = execute(plan, runtimes=[2.0, 3.0, 6.0, 1.0])
    assert realized.finish.tolist() == [2.0, 5.0, 10.5, 16.0]


def test_execute_keeps_node_order_under_noise():
    # Two independent tasks on one 1-core node, planned X [0, 1), Y [1, 2): with noise X still
    # starts first and Y starts exactly when X ends.
    wf = Workflow.from_arrays([1.0, 1.0])
    plan = place(Problem(wf, Cluster([1.0], [1])), [(0, 0), (1, 0)])
    realized = execute(plan, noise=0.5, rng=np.random.default_rng(3))
    assert realized.start[0] == 0.0
    assert realized.start[1] == realized.finish[0]
    again = execute(plan, noise=0.5, rng=np.random.default_rng(3))
    assert again.finish.tolist() == realized.finish.tolist()
    other = execute(plan, noise=0.5, rng=np.random.default_rng(4))
    assert other.finish.tolist() != realized.finish.tolist()


def test_runtime_noise_has_mean_one():
    from wass_env.sim import runtime_noise

    f = runtime_noise(200_000, 0.3, np.random.default_rng(0))
    assert f.mean() == pytest.approx(1.0, abs=0.005)
    assert np.all(runtime_noise(5, 0.0, np.random.default_rng(0)) == 1.0)
    with pytest.raises(ValueError, match="noise"):
        runtime_noise(3, -1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng"):
        execute(place(*diamond()), noise=0.1)


# ---------------------------------------------------------------- lower bound, ranks, CCR
def test_lower_bound_work_term_dominates_wide_workflows():
    # 8 independent 10 s tasks on two 1-core nodes of speed 1 and 3: fluid bound 80 / 4 = 20,
    # critical path 10 / 3.
    wf = Workflow.from_arrays(np.full(8, 10.0))
    problem = Problem(wf, Cluster([1.0, 3.0], [1, 1]))
    assert problem.critical_path() == pytest.approx(10.0 / 3.0)
    assert problem.work_bound() == pytest.approx(20.0)
    assert problem.lower_bound() == pytest.approx(20.0)


def test_upward_rank_uses_mean_costs():
    # Speeds 1 and 2: mean runtimes are 0.75 x work; the edge costs 1 + 10/10 = 2 s.
    wf = Workflow.from_arrays([4.0, 2.0], [(0, 1)], [10.0])
    problem = Problem(wf, Cluster([1.0, 2.0], [1, 1], bandwidth=10.0, latency=1.0))
    assert problem.upward_rank().tolist() == [3.0 + 2.0 + 1.5, 1.5]
    assert problem.downward_rank().tolist() == [0.0, 3.0 + 2.0]


def test_with_ccr_sets_the_ratio_exactly():
    rng = np.random.default_rng(0)
    wf = Workflow.from_arrays(
        rng.uniform(1, 10, 6), [(0, 1), (0, 2), (1, 3), (2, 4), (4, 5)], rng.uniform(1e6, 1e8, 5)
    )
    cl = preset("het16")
    for ccr in (0.1, 1.0, 10.0):
        assert Problem(with_ccr(wf, cl, ccr), cl).ccr() == pytest.approx(ccr, rel=1e-12)
    with pytest.raises(WorkflowError, match="ccr"):
        with_ccr(wf, cl, -1.0)


# ---------------------------------------------------------------- clusters
def test_presets():
    het = preset("het16")
    assert het.n_nodes == 16
    assert het.node_type[:4] == ("fast", "standard", "slow", "bigmem")
    assert het.speed[:4].tolist() == [2.0, 1.0, 0.5, 1.0]
    assert set(np.unique(het.speed).tolist()) == {0.5, 1.0, 2.0}
    hom = preset("hom128")
    assert hom.n_nodes == 128 and np.all(hom.speed == 1.0) and hom.total_cores == 128 * 8
    assert cluster_from_spec({"preset": "het32"}).n_nodes == 32
    assert cluster_from_spec({"kind": "homogeneous", "n_nodes": 3}).total_cores == 24
    with pytest.raises(ClusterError, match="het17"):
        preset("het17")
    with pytest.raises(ClusterError, match="node 0: field 'cores'.*inf"):
        Cluster([1.0], [float("inf")])
    with pytest.raises(ClusterError, match="node_types"):
        cluster_from_spec({"node_types": {"a": [1.0, 2.5, 1.0]}})
    with pytest.raises(ClusterError, match="bandwidth and latency must be numbers"):
        cluster_from_spec({"preset": "het16", "bandwidth": "fast"})
    with pytest.raises(ClusterError, match="'speed'.*-1"):
        Cluster([1.0, -1.0], [1, 1])
    with pytest.raises(ClusterError, match="cores"):
        make_cluster("homogeneous", 2).subset([0, 1]) and Cluster([1.0], [0])


def test_matrix_network_transfer_times():
    bw = np.array([[1.0, 10.0], [20.0, 1.0]])
    lat = np.array([[0.0, 1.0], [2.0, 0.0]])
    cl = Cluster([1.0, 1.0], [1, 1], bandwidth=bw, latency=lat)
    assert cl.transfer_time(100.0, 0, 1) == 11.0
    assert cl.transfer_time(100.0, 1, 0) == 7.0
    assert cl.transfer_time(100.0, 1, 1) == 0.0
    wf = Workflow.from_arrays([1.0, 1.0], [(0, 1)], [100.0])
    plan = place(Problem(wf, cl), [(0, 1), (1, 0)])
    assert plan.start[1] == 1.0 + 7.0
    assert execute(plan).start[1] == 8.0


# ---------------------------------------------------------------- validation
def test_workflow_validation_names_the_offender():
    with pytest.raises(WorkflowError, match=r"cycle: a -> b -> c -> a|cycle: b -> c -> a -> b"):
        Workflow.from_tasks(
            [Task("a", 1, parents=["c"]), Task("b", 1, parents=["a"]), Task("c", 1, parents=["b"])]
        )
    with pytest.raises(WorkflowError, match="'x'.*unknown parent id 'nope'"):
        Workflow.from_tasks([Task("x", 1, parents=["nope"])])
    with pytest.raises(WorkflowError, match="duplicate task id 'x'"):
        Workflow.from_tasks([Task("x", 1), Task("x", 2)])
    with pytest.raises(WorkflowError, match="'y'.*'work'.*-2"):
        Workflow.from_tasks([Task("x", 1), Task("y", -2.0)])
    with pytest.raises(WorkflowError, match="'x' -> 'y'.*'bytes'.*nan"):
        Workflow.from_tasks([Task("x", 1), Task("y", 1, parents={"x": float("nan")})])
    with pytest.raises(WorkflowError, match="'y'.*'cores'.*1.5"):
        Workflow.from_tasks([Task("x", 1), Task("y", 1, cores=1.5)])  # type: ignore[arg-type]
    with pytest.raises(WorkflowError, match="'y'.*'cores'.*inf"):
        Workflow.from_tasks([Task("x", 1), Task("y", 1, cores=float("inf"))])  # type: ignore[arg-type]
    with pytest.raises(WorkflowError, match="duplicate edge 'x' -> 'y'"):
        Workflow.from_arrays([1, 1], [(0, 1), (0, 1)], ids=["x", "y"])
    with pytest.raises(WorkflowError, match="no tasks"):
        Workflow.from_arrays([])


def test_task_that_fits_nowhere_is_rejected():
    wf = Workflow.from_tasks([Task("big", 1.0, cores=16), Task("ok", 1.0)], source="w.json")
    with pytest.raises(WorkflowError, match=r"'big' in w.json fits on no node.*16 cores"):
        Problem(wf, preset("het16").subset([0, 1, 2]))
    assert Problem(wf, preset("het16")).fits[0].tolist()[:4] == [False, False, False, True]


def test_builder_rejects_bad_placements():
    problem, _ = diamond()
    b = PlanBuilder(problem)
    with pytest.raises(PlanError, match="'D' is not ready"):
        b.assign(3, 0)
    with pytest.raises(PlanError, match="node 5.*no such node"):
        b.assign(0, 5)
    b.assign(0, 0)
    with pytest.raises(PlanError, match="already placed"):
        b.assign(0, 1)
    with pytest.raises(PlanError, match="incomplete: 3 of 4"):
        b.plan()


def test_cluster_specs_that_stand_for_several_clusters():
    from wass_env.sim import expand_cluster_spec

    assert expand_cluster_spec("het16") == ["het16"]
    both = expand_cluster_spec({"kind": ["homogeneous", "heterogeneous"], "n_nodes": [4, 8]})
    assert [cluster_from_spec(c).name for c in both] == ["hom4", "hom8", "het4", "het8"]
    mix = expand_cluster_spec({"mix": ["hom16", {"kind": "heterogeneous", "n_nodes": [5, 6]}]})
    assert [cluster_from_spec(c).n_nodes for c in mix] == [16, 5, 6]
    assert expand_cluster_spec([{"preset": "het32", "latency": 0.0}]) == [
        {"preset": "het32", "latency": 0.0}
    ]
    with pytest.raises(ClusterError, match="empty list"):
        expand_cluster_spec([])
    with pytest.raises(ClusterError, match="'mix' takes no other fields"):
        expand_cluster_spec({"mix": ["het16"], "kind": "homogeneous"})


@pytest.mark.parametrize("insertion", [True, False])
def test_builder_copy_is_independent(insertion):
    # Place half of a random DAG, copy, place the rest differently on the copy: the original
    # then finishes exactly as a builder that was never copied.
    from wass_env.workloads import layered

    rng = np.random.default_rng(4)
    wf = layered(30, rng, width=5, density=0.4)
    cl = make_cluster("heterogeneous", 6)
    problem = Problem(with_ccr(wf, cl, 1.0), cl)
    order = problem.workflow.topo_order.tolist()
    nodes = rng.integers(0, 6, len(order))
    fresh, b = PlanBuilder(problem, insertion=insertion), PlanBuilder(problem, insertion=insertion)
    for t in order[:15]:
        b.assign(t, int(nodes[t]))
        fresh.assign(t, int(nodes[t]))
    twin = b.copy()
    for t in order[15:]:
        twin.assign(t, int((nodes[t] + 1) % 6))
    assert twin.done and not b.done and b.n_placed == 15
    for t in order[15:]:
        b.assign(t, int(nodes[t]))
        fresh.assign(t, int(nodes[t]))
    for got, want in ((b.plan(), fresh.plan()), (twin.plan(), twin.copy().plan())):
        np.testing.assert_array_equal(got.node, want.node)
        np.testing.assert_array_equal(got.start, want.start)
        np.testing.assert_array_equal(got.finish, want.finish)
    assert not np.array_equal(twin.plan().node, b.plan().node)


def test_workflow_is_immutable_and_comparable():
    problem, _ = diamond()
    wf = problem.workflow
    with pytest.raises(ValueError):
        wf.work[0] = 5.0
    assert wf.topo_order.tolist() == [0, 1, 2, 3]
    assert wf.levels.tolist() == [0, 1, 1, 2]
    assert wf.children(0).tolist() == [1, 2] and wf.parents(3).tolist() == [1, 2]
    assert wf == wf.replace(name="other")
    assert wf != wf.replace(edge_bytes=wf.edge_bytes * 2)


def test_builder_copy_is_independent_and_continues_identically() -> None:
    from wass_env.sim import PlanBuilder, Problem, preset
    from wass_env.workloads.generators import layered

    rng = np.random.default_rng(5)
    problem = Problem(layered(40, np.random.default_rng(3), ccr=1.0), preset("het16"))
    order = problem.workflow.topo_order.tolist()
    nodes = rng.integers(problem.n_nodes, size=problem.n_tasks)
    b = PlanBuilder(problem, insertion=True)
    for t in order[:20]:
        b.assign(t, int(nodes[t]))
    fork = b.copy()
    # Diverge the fork: the original must not change.
    before = (b.node.copy(), b.start.copy(), sorted(b.ready), b.max_finish)
    for t in order[20:30]:
        fork.assign(t, 0)
    assert np.array_equal(b.node, before[0]) and np.array_equal(b.start, before[1], equal_nan=True)
    assert sorted(b.ready) == before[2] and b.max_finish == before[3]
    # A second fork continued like the original gives the same plan.
    twin = b.copy()
    for t in order[20:]:
        b.assign(t, int(nodes[t]))
        twin.assign(t, int(nodes[t]))
    assert np.array_equal(b.plan().start, twin.plan().start)
    assert b.plan().makespan == twin.plan().makespan
