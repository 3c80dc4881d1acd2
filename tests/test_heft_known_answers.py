"""Known answers: the 10-task, 3-processor example of Topcuoglu, Hariri & Wu (2002).

"Performance-effective and low-complexity task scheduling for heterogeneous computing", IEEE TPDS
13(3), Fig. 2 and Table 1 (computation costs), with the published upward ranks (Table 2) and
schedule lengths HEFT 80 and CPOP 86 (Fig. 3). The paper gives communication costs, not bytes:
1-core nodes, bandwidth 1 byte/s and no latency make an edge's bytes its cost in seconds (and
zero when both tasks share a processor). The schedules below are derived by hand step by step;
they are the paper's Gantt charts.

PEFT (Arabnejad & Barbosa 2014) illustrates its algorithm on a different sample DAG, and no
published PEFT makespan for this graph could be verified, so the PEFT test checks a
hand-derived optimistic cost table and a hand-derived schedule instead.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_heuristics import assert_valid_plan

from agents.heft import (
    CPOPScheduler,
    HEFTScheduler,
    PEFTScheduler,
    critical_path_tasks,
    optimistic_cost_table,
)
from wass_env.sim import Cluster, PlanBuilder, Problem, Workflow, execute

# Computation costs [s], rows n1..n10, columns P1..P3.
COST = np.array(
    [
        [14, 16, 9],
        [13, 19, 18],
        [11, 13, 19],
        [13, 8, 17],
        [12, 13, 10],
        [13, 16, 9],
        [7, 15, 11],
        [5, 11, 14],
        [18, 12, 20],
        [21, 7, 16],
    ],
    dtype=float,
)
# (parent, child, communication cost [s]), tasks numbered from 1 as in the paper.
EDGES = [
    (1, 2, 18), (1, 3, 12), (1, 4, 9), (1, 5, 11), (1, 6, 14),
    (2, 8, 19), (2, 9, 16), (3, 7, 23), (4, 8, 27), (4, 9, 23),
    (5, 9, 13), (6, 8, 15), (7, 10, 17), (8, 10, 11), (9, 10, 13),
]  # fmt: skip


@pytest.fixture(scope="module")
def problem() -> Problem:
    edges = np.array([(a - 1, b - 1) for a, b, _ in EDGES])
    wf = Workflow.from_arrays(
        COST.mean(axis=1),
        edges,
        [c for _, _, c in EDGES],
        ids=[f"n{i}" for i in range(1, 11)],
        name="topcuoglu2002",
    )
    cluster = Cluster([1.0, 1.0, 1.0], [1, 1, 1], bandwidth=1.0, latency=0.0)
    return Problem(wf, cluster, cost_matrix=COST)


def _p(*procs: int) -> list[int]:
    """Paper processors P1..P3 as node indices."""
    return [p - 1 for p in procs]


def test_upward_ranks(problem: Problem) -> None:
    published = [108.0, 77.0, 80.0, 80.0, 69.0, 63.333, 42.667, 35.667, 44.333, 14.667]
    np.testing.assert_allclose(problem.upward_rank(), published, atol=5e-4)


def test_heft_schedule(problem: Problem) -> None:
    # Order by rank_u, n3 before n4 (80 = 80: lower index): n1 n3 n4 n2 n5 n6 n9 n7 n8 n10.
    # EFT on (P1, P2, P3), "a + b" = data-ready + cost, insertion into idle gaps:
    #  n1: (14, 16, 9)                                   -> P3 [0, 9]
    #  n3: inputs at 9 + 12 = 21 off P3: (32, 34, 9+19=28) -> P3 [9, 28]
    #  n4: inputs at 18 off P3: (31, 26, 28+17=45)       -> P2 [18, 26]
    #  n2: inputs at 27 off P3: (40, 27+19=46, 28+18=46)   -> P1 [27, 40]
    #  n5: inputs at 20 off P3: P1 gap [20, 27) < 12 -> 52; P2 26+13=39; P3 28+10=38 -> P3 [28, 38]
    #  n6: inputs at 23 off P3: P1 gap [23, 27) < 13 -> 53; P2 26+16=42; P3 38+9=47 -> P2 [26, 42]
    #  n9: from n2 (P1, 40, 16), n4 (P2, 26, 23), n5 (P3, 38, 13): ready P1 51, P2 56, P3 56:
    #      (69, 68, 76)                                  -> P2 [56, 68]
    #  n7: from n3 (P3, 28, 23): P1 51+7=58; P2 gap [51, 56) < 15 -> 68+15=83; P3 38+11=49
    #                                                    -> P3 [38, 49]
    #  n8: from n2 (P1, 40, 19), n4 (P2, 26, 27), n6 (P2, 42, 15): ready P1 57, P2 59, P3 59:
    #      (62, 68+11=79, 73)                            -> P1 [57, 62]
    #  n10: from n7 (P3, 49, 17), n8 (P1, 62, 11), n9 (P2, 68, 13): ready P1 81, P2 73, P3 81:
    #      (102, 80, 97)                                 -> P2 [73, 80]
    plan = HEFTScheduler().plan(problem)
    assert plan.makespan == 80.0
    assert np.argsort(plan.decision).tolist() == [0, 2, 3, 1, 4, 5, 8, 6, 7, 9]
    assert plan.node.tolist() == _p(3, 1, 3, 2, 3, 2, 3, 1, 2, 2)
    assert plan.start.tolist() == [0, 27, 9, 18, 28, 26, 38, 57, 56, 73]
    assert_valid_plan(plan)
    assert execute(plan).makespan == 80.0


def test_cpop_schedule(problem: Problem) -> None:
    # rank_d: n1 0, n2 31, n3 25, n4 22, n5 24, n6 27, n7 62.333, n8 66.667, n9 63.667,
    # n10 93.333. Priority rank_u + rank_d: n1 108, n2 108, n3 105, n4 102, n5 93, n6 90.333,
    # n7 105, n8 102.333, n9 108, n10 108. |CP| = 108: n1 -> n2 -> n9 -> n10.
    # CP runtimes per processor: P1 14+13+18+21 = 66, P2 16+19+12+7 = 54, P3 9+18+20+16 = 63
    # -> critical-path processor P2.
    np.testing.assert_allclose(
        problem.upward_rank() + problem.downward_rank(),
        [108, 108, 105, 102, 93, 90.333, 105, 102.333, 108, 108],
        atol=5e-4,
    )
    assert critical_path_tasks(problem).tolist() == [0, 1, 8, 9]
    # Highest-priority ready task first:
    #  n1 (CP) -> P2 [0, 16]; n2 (CP) -> P2 [16, 35];
    #  n3: inputs at 28 off P2: (39, 35+13=48, 47)        -> P1 [28, 39]
    #  n7 (105): from n3 (P1, 39, 23): (46, 77, 73)        -> P1 [39, 46]
    #  n4 (102): inputs at 25 off P2: P1 gap [25, 28) < 13 -> 59; P2 43; P3 42 -> P3 [25, 42]
    #  n5 (93): inputs at 27 off P2: (58, 48, 52)          -> P2 [35, 48]
    #  n9 (CP, 108): from n2 (P2, 35), n4 (P3, 42, 23), n5 (P2, 48): ready 65 -> P2 [65, 77]
    #  n6 (90.333): inputs at 30 off P2: P1 59; P2 gap [48, 65) fits 16 -> 64; P3 51
    #                                                    -> P3 [42, 51]
    #  n8: from n2 (P2, 35, 19), n4 (P3, 42, 27), n6 (P3, 51, 15): ready P1 69, P2 69, P3 54:
    #      (74, 77+11=88, 68)                            -> P3 [54, 68]
    #  n10 (CP): from n7 (P1, 46, 17), n8 (P3, 68, 11), n9 (P2, 77): ready 79 -> P2 [79, 86]
    sched = CPOPScheduler()
    plan = sched.plan(problem)
    assert sched.cp_node == 1
    assert plan.makespan == 86.0
    assert np.argsort(plan.decision).tolist() == [0, 1, 2, 6, 3, 4, 8, 5, 7, 9]
    assert plan.node.tolist() == _p(2, 2, 1, 3, 2, 3, 1, 3, 2, 2)
    assert plan.start.tolist() == [0, 16, 28, 25, 35, 42, 39, 54, 65, 79]
    assert_valid_plan(plan)


def test_peft_cost_table(problem: Problem) -> None:
    # OCT[t, p] = max over children c of min over w (OCT[c, w] + w(c, w) + cbar(t, c) [w != p]).
    # Exit n10: 0. n7 (cbar 17 to n10, w(n10) = 21, 7, 16): P1 min(21, 24, 33) = 21,
    # P2 min(38, 7, 33) = 7, P3 min(38, 24, 16) = 16. Likewise n8 (cbar 11): 18, 7, 16;
    # n9 (cbar 13): 20, 7, 16. n2 -> n8 (OCT + w = 23, 18, 30; cbar 19) gives 23, 18, 30 and
    # -> n9 (38, 19, 36; cbar 16) gives 35, 19, 35: max 35, 19, 35. n3 -> n7 (28, 22, 27;
    # cbar 23): 28, 22, 27. n4 -> n8 (cbar 27): 23, 18, 30; -> n9 (cbar 23): 38, 19, 36: max
    # 38, 19, 36. n5 -> n9 (cbar 13): 32, 19, 32. n6 -> n8 (cbar 15): 23, 18, 30.
    # n1: children OCT + w: n2 (48, 38, 53; cbar 18), n3 (39, 35, 46; 12), n4 (51, 27, 53; 9),
    # n5 (44, 32, 42; 11), n6 (36, 34, 39; 14) -> P1 max(48, 39, 36, 43, 36) = 48,
    # P2 max(38, 35, 27, 32, 34) = 38, P3 max(53, 46, 36, 42, 39) = 53.
    expected = [
        [48, 38, 53],
        [35, 19, 35],
        [28, 22, 27],
        [38, 19, 36],
        [32, 19, 32],
        [23, 18, 30],
        [21, 7, 16],
        [18, 7, 16],
        [20, 7, 16],
        [0, 0, 0],
    ]
    np.testing.assert_allclose(optimistic_cost_table(problem), expected, atol=1e-12)


def test_peft_schedule(problem: Problem) -> None:
    # rank_oct = row means: n1 46.33, n2 29.67, n3 25.67, n4 31, n5 27.67, n6 23.67, n7 14.67,
    # n8 13.67, n9 14.33, n10 0. O_EFT = EFT + OCT on (P1, P2, P3):
    #  n1: (14+48, 16+38, 9+53) = (62, 54, 62)                     -> P2 [0, 16]
    #  n4: inputs at 25 off P2: EFT (38, 24, 42) + (38, 19, 36) = (76, 43, 78) -> P2 [16, 24]
    #  n2: inputs at 34 off P2: EFT (47, 43, 52) -> (82, 62, 87)   -> P2 [24, 43]
    #  n5: inputs at 27 off P2: EFT (39, 56, 37) -> (71, 75, 69)   -> P3 [27, 37]
    #  n3: inputs at 28 off P2: EFT (39, 56, 56) -> (67, 78, 83)   -> P1 [28, 39]
    #  n6: inputs at 30 off P2: EFT (52, 59, 46) -> (75, 77, 76)   -> P1 [39, 52]
    #  n7: from n3 (P1, 39, 23): EFT (59, 77, 73) -> (80, 84, 89)  -> P1 [52, 59]
    #  n9: from n2 (P2, 43, 16), n4 (P2, 24, 23), n5 (P3, 37, 13): ready (59, 50, 59):
    #      EFT (77, 62, 79) -> (97, 69, 95)                        -> P2 [50, 62]
    #  n8: from n2 (P2, 43, 19), n4 (P2, 24, 27), n6 (P1, 52, 15): ready (62, 67, 67):
    #      EFT (67, 78, 81) -> (85, 85, 97): tie, lower index       -> P1 [62, 67]
    #  n10: from n7 (P1, 59, 17), n8 (P1, 67, 11), n9 (P2, 62, 13): ready (75, 78, 78):
    #      EFT (96, 85, 94)                                        -> P2 [78, 85]
    plan = PEFTScheduler().plan(problem)
    assert np.argsort(plan.decision).tolist() == [0, 3, 1, 4, 2, 5, 6, 8, 7, 9]
    assert plan.node.tolist() == _p(2, 2, 1, 2, 3, 1, 1, 1, 2, 2)
    assert plan.start.tolist() == [0, 24, 28, 16, 27, 39, 52, 62, 50, 78]
    assert plan.makespan == 85.0
    assert_valid_plan(plan)


def test_stepwise_heft_reproduces_published_schedule(problem: Problem) -> None:
    b = PlanBuilder(problem, insertion=True)
    heft = HEFTScheduler()
    for t in [0, 2, 3, 1, 4, 5, 8, 6, 7, 9]:
        b.assign(t, heft.select_node(b, t))
    assert b.plan().makespan == 80.0
