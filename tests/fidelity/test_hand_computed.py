"""Small plans computed by hand, replayed by ``execute`` and by SimGrid.

The first tests pin both simulators to arithmetic written out below. The last ones document
where the two models part: SimGrid can share a link's bandwidth between concurrent transfers
(per node pair, or per node on a star network); ``wass_env.sim`` has no contention at all.
"""

from __future__ import annotations

import numpy as np
import pytest

from wass_env.sim import Cluster, Plan, Problem, Workflow, execute
from wass_env.sim.reference import replay

EXACT = 1e-9  # [s] agreement asked of hand-computed times


def _diamond() -> Plan:
    """A -> B, A -> C, B -> D, C -> D on two nodes; C alone on the fast node 1.

    Node 0 has speed 1, node 1 speed 2, one core each; links: 1e6 bytes/s, 0.5 s latency;
    storage: 1e6 bytes/s, 0.25 s latency. A reads 5e5 bytes of external input.
    Edges: A->B 1e6 bytes (same node: free), A->C 2e6 (node 0 -> 1), B->D 3e6 (same node: free),
    C->D 4e6 (node 1 -> 0).
    """
    wf = Workflow.from_arrays(
        [2.0, 3.0, 4.0, 1.0],
        [(0, 1), (0, 2), (1, 3), (2, 3)],
        [1e6, 2e6, 3e6, 4e6],
        ids=["A", "B", "C", "D"],
        input_bytes=[5e5, 0.0, 0.0, 0.0],
    )
    cl = Cluster(
        [1.0, 2.0],
        [1, 1],
        bandwidth=1e6,
        latency=0.5,
        storage_bandwidth=1e6,
        storage_latency=0.25,
    )
    return Plan.from_assignment(Problem(wf, cl), np.array([0, 0, 1, 0]))


# A: stage-in 0.25 + 5e5 / 1e6 = 0.75 -> start 0.75, runs 2 / 1 = 2 s -> finish 2.75.
# B: input from A on the same node at 2.75 -> start 2.75, runs 3 s -> finish 5.75.
# C: A's 2e6 bytes arrive at 2.75 + 0.5 + 2e6 / 1e6 = 5.25 -> start 5.25, runs 4 / 2 = 2 s
#    -> finish 7.25.
# D: B's output is local at 5.75; C's 4e6 bytes arrive at 7.25 + 0.5 + 4 = 11.75
#    -> start max(5.75, 11.75) = 11.75, runs 1 s -> finish 12.75 = makespan.
DIAMOND_START = [0.75, 2.75, 5.25, 11.75]
DIAMOND_FINISH = [2.75, 5.75, 7.25, 12.75]


def _multicore(insertion: bool) -> Plan:
    """E -> {X, Y, Z, W} on one node of 4 cores (speed 1).

    E: 1 core, 1 s; X: 3 cores, 4 s; Y: 2 cores, 2 s; Z: 1 core, 1 s; W: 4 cores, 0 s.
    Placed in the order E, X, Y, Z, W.
    """
    wf = Workflow.from_arrays(
        [1.0, 4.0, 2.0, 1.0, 0.0],
        [(0, 1), (0, 2), (0, 3), (0, 4)],
        cores=[1, 3, 2, 1, 4],
        ids=["E", "X", "Y", "Z", "W"],
    )
    cl = Cluster([1.0], [4])
    return Plan.from_assignment(Problem(wf, cl), np.zeros(5, dtype=np.int64), insertion=insertion)


# Queue policy (a node starts tasks in placement order):
#   E 0-1; X takes 3 of 4 cores at 1, runs to 5; Y needs 2 cores, only 1 is free until 5
#   -> Y 5-7; Z may not start before Y -> at 5 (4 free: Y takes 2, Z 1) Z 5-6; W takes no
#   cores but comes after Z -> W starts and ends at 5.
MULTICORE_QUEUE = ([0.0, 1.0, 5.0, 5.0, 5.0], [1.0, 5.0, 7.0, 6.0, 5.0])
# Insertion policy: Z fits in the core left free beside X -> Z 1-2; W (no cores) at 1;
#   Y still waits for X -> 5-7.
MULTICORE_INSERTION = ([0.0, 1.0, 5.0, 1.0, 1.0], [1.0, 5.0, 7.0, 2.0, 1.0])


def test_diamond_execute_matches_hand_computation() -> None:
    sched = execute(_diamond())
    np.testing.assert_allclose(sched.start, DIAMOND_START, rtol=0, atol=EXACT)
    np.testing.assert_allclose(sched.finish, DIAMOND_FINISH, rtol=0, atol=EXACT)
    assert sched.makespan == pytest.approx(12.75, abs=EXACT)


def test_diamond_simgrid_matches_hand_computation(simgrid: str) -> None:
    (sched,) = replay([_diamond()], python=simgrid).schedules
    np.testing.assert_allclose(sched.start, DIAMOND_START, rtol=0, atol=EXACT)
    np.testing.assert_allclose(sched.finish, DIAMOND_FINISH, rtol=0, atol=EXACT)
    assert sched.makespan == pytest.approx(12.75, abs=EXACT)


@pytest.mark.parametrize(
    ("insertion", "expected"),
    [(False, MULTICORE_QUEUE), (True, MULTICORE_INSERTION)],
    ids=["queue", "insertion"],
)
def test_multicore_node_both_simulators(
    simgrid: str, insertion: bool, expected: tuple[list[float], list[float]]
) -> None:
    plan = _multicore(insertion)
    ours = execute(plan)
    (ref,) = replay([plan], python=simgrid).schedules
    for sched in (ours, ref):
        np.testing.assert_allclose(sched.start, expected[0], rtol=0, atol=EXACT)
        np.testing.assert_allclose(sched.finish, expected[1], rtol=0, atol=EXACT)


def _fan_out(children_nodes: list[int]) -> Plan:
    """P (node 0, 1 s) sends 1e6 bytes to each child (1 s each) on ``children_nodes``.

    Links: 1e6 bytes/s, 0.5 s latency; every node has 2 cores, speed 1.
    """
    k = len(children_nodes)
    wf = Workflow.from_arrays([1.0] * (k + 1), [(0, i + 1) for i in range(k)], [1e6] * k)
    cl = Cluster([1.0, 1.0, 1.0], [2, 2, 2], bandwidth=1e6, latency=0.5)
    return Plan.from_assignment(Problem(wf, cl), np.array([0, *children_nodes]))


def test_concurrent_transfers_on_one_node_pair(simgrid: str) -> None:
    """Modelling difference: two transfers between the same two nodes at once.

    ``wass_env.sim`` (and SimGrid with fat-pipe links): each takes 0.5 + 1e6 / 1e6 = 1.5 s, so
    both children start at 1 + 1.5 = 2.5 and finish at 3.5.
    SimGrid with one shared link per pair: both flows pay the 0.5 s latency, then share
    1e6 bytes/s (5e5 each), so each needs 2 s more: arrival 1 + 0.5 + 2 = 3.5, finish 4.5.
    """
    plan = _fan_out([1, 1])
    ours = execute(plan)
    fat, shared = (
        replay([plan], sharing=s, python=simgrid).schedules[0] for s in ("fatpipe", "shared")
    )
    for sched in (ours, fat):
        np.testing.assert_allclose(sched.start, [0.0, 2.5, 2.5], rtol=0, atol=EXACT)
        np.testing.assert_allclose(sched.finish, [1.0, 3.5, 3.5], rtol=0, atol=EXACT)
    np.testing.assert_allclose(shared.start, [0.0, 3.5, 3.5], rtol=0, atol=EXACT)
    np.testing.assert_allclose(shared.finish, [1.0, 4.5, 4.5], rtol=0, atol=EXACT)


def test_concurrent_transfers_leaving_one_node_on_a_star(simgrid: str) -> None:
    """Modelling difference: NIC contention, which ``wass_env.sim`` does not model.

    On the star platform each node has one link to a switch (0.25 s latency each way, so 0.5 s
    end to end, and 1e6 bytes/s). P's two outputs to nodes 1 and 2 leave through node 0's link
    together: 0.5 s latency, then 5e5 bytes/s each -> arrival 1 + 0.5 + 2 = 3.5, finish 4.5.
    Without contention (``execute``): arrival 2.5, finish 3.5.
    """
    plan = _fan_out([1, 2])
    ours = execute(plan)
    (star,) = replay([plan], topology="star", python=simgrid).schedules
    np.testing.assert_allclose(ours.finish, [1.0, 3.5, 3.5], rtol=0, atol=EXACT)
    np.testing.assert_allclose(star.start, [0.0, 3.5, 3.5], rtol=0, atol=EXACT)
    np.testing.assert_allclose(star.finish, [1.0, 4.5, 4.5], rtol=0, atol=EXACT)
