"""Pilot passes over a plan (wass_env.sim.improve), the improved_portfolio scheduler and the
improved plan hints: hand-computed makespans and the never-longer property."""

from __future__ import annotations

import numpy as np
import pytest
from test_heuristics import random_problem

from agents.registry import make_scheduler
from wass_env.envs import WassSchedEnv
from wass_env.envs.hints import plan_portfolio, play
from wass_env.sim import Cluster, PlanBuilder, Problem, Workflow
from wass_env.sim.improve import followers, improve_plan, list_order
from wass_env.sim.ordering import ReadyQueue, task_priority

CANDIDATES = ["single_node", "heft", "peft", "cpop", "data_locality"]


def _replay(problem: Problem, nodes: np.ndarray, priority: np.ndarray) -> float:
    return float(play(problem, priority, lambda b, t: int(nodes[t])).max_finish)


def test_list_order_is_the_ready_queue_order() -> None:
    for seed in range(1, 6):
        problem = random_problem(seed, n_tasks=20)
        prio = task_priority(problem, "rank")
        b = PlanBuilder(problem)
        q = ReadyQueue(b, prio)
        seen = []
        while not b.done:
            t = q.pop()
            seen.append(t)
            b.assign(t, int(np.flatnonzero(problem.fits[t])[0]))
            q.update()
        assert list_order(problem, prio) == seen


def test_a_pass_moves_a_task_off_the_shared_node_by_hand() -> None:
    # Two independent 2 s tasks on two unit-speed 1-core nodes, both started on node 0: 4 s.
    # At task 0 the pass tries node 1 with task 1 kept on node 0: both run at once, 2 s, so it
    # keeps the move. At task 1 node 1 would queue it after task 0 (4 s): no change. A second
    # pass finds nothing either.
    wf = Workflow(ids=["a", "b"], work=[2.0, 2.0], name="two")
    problem = Problem(wf, Cluster(speed=[1.0, 1.0], cores=[1, 1], name="pair"))
    prio = np.array([1.0, 1.0])
    nodes, span, changes = improve_plan(problem, np.array([0, 0]), prio, passes=3)
    assert nodes.tolist() == [1, 0] and span == 2.0 and changes == 1


def test_a_pass_gathers_a_chain_whose_data_is_slow_to_move_by_hand() -> None:
    # a (1 s) -> b (1 s) sending 5 s of data, started with a on node 0 and b on node 1:
    # a [0, 1], the transfer [1, 6], b [6, 7]. At a the pass tries node 1 (a's earliest finish
    # ties on both nodes): a [0, 1] and b [1, 2] on node 1, 2 s, kept. At b, node 0 would wait
    # for the transfer again: no change.
    wf = Workflow.from_arrays([1.0, 1.0], [(0, 1)], [5.0], name="chain")
    problem = Problem(wf, Cluster([1.0, 1.0], [1, 1], bandwidth=1.0, latency=0.0))
    prio = task_priority(problem, "rank")
    assert _replay(problem, np.array([0, 1]), prio) == pytest.approx(7.0)
    nodes, span, changes = improve_plan(problem, np.array([0, 1]), prio)
    assert nodes.tolist() == [1, 1] and span == pytest.approx(2.0) and changes == 1


def _two_heavy_chains() -> Problem:
    # a -> b and c -> d, 2 s each, every edge 100 s of data, on two unit-speed 1-core nodes.
    wf = Workflow.from_arrays(
        [2.0, 2.0, 2.0, 2.0], [(0, 1), (2, 3)], [100.0, 100.0], ids=["a", "b", "c", "d"]
    )
    return Problem(wf, Cluster([1.0, 1.0], [1, 1], bandwidth=1.0, latency=0.0))


def test_a_group_pass_moves_a_task_with_its_follower_by_hand() -> None:
    # Everything on node 0 in list order a, c, b, d: a [0, 2], c [2, 4], b [4, 6], d [6, 8].
    # Moving any one task alone to node 1 makes a child fetch 100 s of data (or a task its
    # parent's): no plain pass finds anything. Moving a with its follower b: a [0, 2] and
    # b [2, 4] on node 1, c [0, 2] and d [2, 4] on node 0: 4 s.
    problem = _two_heavy_chains()
    prio = task_priority(problem, "rank")
    start = np.array([0, 0, 0, 0])
    assert _replay(problem, start, prio) == 8.0
    assert followers(problem, [0, 0, 0, 0], 0) == [1] and followers(problem, [0, 1, 0, 0], 0) == []
    nodes, span, changes = improve_plan(problem, start, prio, passes=3)
    assert nodes.tolist() == [0, 0, 0, 0] and span == 8.0 and changes == 0
    nodes, span, changes = improve_plan(problem, start, prio, passes=3, follow=True)
    assert nodes.tolist() == [1, 1, 0, 0] and span == 4.0 and changes == 1


def test_a_child_that_reads_more_from_another_parent_does_not_follow() -> None:
    # c has parents a (10 bytes) and b (20 bytes): it follows b, not a; ties go to the first edge.
    wf = Workflow.from_arrays([1.0, 1.0, 1.0], [(0, 2), (1, 2)], [10.0, 20.0])
    problem = Problem(wf, Cluster([1.0, 1.0], [1, 1]))
    assert followers(problem, [0, 0, 0], 0) == [] and followers(problem, [0, 0, 0], 1) == [2]
    tie = Problem(
        Workflow.from_arrays([1.0, 1.0, 1.0], [(0, 2), (1, 2)], [5.0, 5.0]), problem.cluster
    )
    assert followers(tie, [0, 0, 0], 0) == [2] and followers(tie, [0, 0, 0], 1) == []
    none = Problem(Workflow.from_arrays([1.0, 1.0], [(0, 1)], [0.0]), problem.cluster)
    assert followers(none, [0, 0], 0) == []  # no data, nothing to keep together


@pytest.mark.parametrize("seed", range(1, 9))
def test_improved_plans_are_never_longer_and_replay_to_their_makespan(seed: int) -> None:
    problem = random_problem(seed, n_tasks=24, n_nodes=5, matrix_network=seed % 2 == 0)
    prio = task_priority(problem, "rank")
    for start in ("heft", "data_locality", "single_node"):
        plan = make_scheduler(start).plan(problem)
        before = _replay(problem, plan.node, prio)
        nodes, span, changes = improve_plan(problem, plan.node, prio, passes=3)
        assert span <= before
        assert span == pytest.approx(_replay(problem, nodes, prio), rel=1e-12)
        assert (changes > 0) == (span < before)  # every change is a strict gain
        # The group passes start from the plain passes' plan: never longer than it.
        fnodes, fspan, fchanges = improve_plan(problem, plan.node, prio, passes=3, follow=True)
        assert fspan <= span and fchanges >= changes
        assert fspan == pytest.approx(_replay(problem, fnodes, prio), rel=1e-12)
    port = make_scheduler("plan_portfolio").plan(problem)
    plain = make_scheduler("improved_portfolio", follow=False).plan(problem)
    improved = make_scheduler("improved_portfolio").plan(problem)
    heft = make_scheduler("heft").plan(problem)
    assert improved.makespan <= plain.makespan * (1 + 1e-12)
    assert plain.makespan <= port.makespan * (1 + 1e-12) <= heft.makespan * (1 + 1e-9)


def test_improved_hints_are_the_improved_portfolio_plan() -> None:
    # Find an instance the passes improve; the env's hint column then marks the improved plan,
    # its context holds the improved makespan, and following the hints plays that plan.
    for seed in range(1, 40):
        problem = random_problem(seed, n_tasks=24, n_nodes=5)
        prio = task_priority(problem, "rank")
        base = plan_portfolio(problem, CANDIDATES, priority=prio)
        better = plan_portfolio(problem, CANDIDATES, priority=prio, improve=3, follow=True)
        if better.makespan < base.makespan:
            break
    else:
        pytest.fail("no instance where the pilot passes shorten the portfolio's plan")
    assert better.name == f"{base.name}+improved" and better.rule_makespan == base.rule_makespan
    sched = make_scheduler("improved_portfolio")
    assert sched.plan(problem).makespan == pytest.approx(better.makespan, rel=1e-12)
    assert sched.last_choice == better.name
    env = WassSchedEnv(
        workload=[problem.workflow],
        cluster=problem.cluster,
        lookahead=True,
        plan_hints=True,
        plan_hint_candidates=CANDIDATES,
        plan_hint_improve=3,
        plan_hint_follow=True,
    )
    obs, _ = env.reset(seed=0, options={"problem": problem})
    assert obs["context"][-2] == pytest.approx(better.makespan / problem.lower_bound(), rel=1e-6)
    done = False
    while not done:
        t = env.current_task
        col = obs["lookahead"][: problem.n_nodes, -1]
        assert int(np.argmin(col)) == better.nodes[t] and col.min() == 0.0
        obs, _, done, _, info = env.step(int(better.nodes[t]))
    assert info["planned_makespan"] == pytest.approx(better.makespan, rel=1e-12)


def test_plan_hint_improve_refuses_bad_values() -> None:
    wf = Workflow(ids=["a"], work=[1.0], name="one")
    cl = Cluster(speed=[1.0], cores=[1], name="one")
    kw = {"workload": [wf], "cluster": cl, "lookahead": True, "plan_hints": True}
    for bad in (-1, 101, 1.5, True, "3"):
        with pytest.raises(ValueError, match="plan_hint_improve must be an integer"):
            WassSchedEnv(**kw, plan_hint_candidates=CANDIDATES, plan_hint_improve=bad)
    with pytest.raises(ValueError, match="plan_hint_improve needs plan_hint_candidates"):
        WassSchedEnv(**kw, plan_hint_improve=2)
    with pytest.raises(ValueError, match="plan_hint_follow needs plan_hint_improve > 0"):
        WassSchedEnv(**kw, plan_hint_candidates=CANDIDATES, plan_hint_follow=True)
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="plan_hint_follow must be true or false"):
            WassSchedEnv(**kw, plan_hint_candidates=CANDIDATES, plan_hint_improve=1,
                         plan_hint_follow=bad)  # fmt: skip
