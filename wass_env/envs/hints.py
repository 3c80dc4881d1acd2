"""The plan portfolio behind the plan hints: per instance, the shortest of several plans.

A policy acts in the environment's task order (``task_order``), so every plan compared here is
judged in that order: a rule (``heft_lookahead``, the one the policy's prior follows) places the
tasks itself, and each candidate contributes its rule acting in that order and its own plan (in
its own order, which for PEFT or CPOP is not the environment's), whose node assignment is then
replayed in that order. The shortest one wins, the rule among tied ones (nodes mixed from tied
plans make a worse plan), so that where no candidate is strictly shorter the rule's own plan is
the hint and the policy's prior keeps following the rule.

The environment (``plan_hints=True`` with ``plan_hint_candidates``), the ``portfolio`` imitation
expert with ``plans: true`` and the ``plan_portfolio`` scheduler all call :func:`plan_portfolio`
and share its result through the problem's cache, so they agree on every instance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from wass_env.scheduling import Scheduler, make_scheduler
from wass_env.sim.improve import improve_plan
from wass_env.sim.ordering import TIE_RTOL, ReadyQueue, argmin_first, task_priority
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = [
    "HINT_RULE",
    "PORTFOLIO_PLAN_CANDIDATES",
    "PortfolioChoice",
    "plan_portfolio",
    "play",
]

#: The rule the plan hints compare every candidate with (the policy's ``lookahead_gap`` prior).
HINT_RULE = "heft_lookahead"
#: The candidates of the plan portfolio by default: the heuristics ``best_heuristic`` chooses
#: from (HEFT is one of them, so the portfolio is never longer than HEFT's plan in the
#: environment's order).
PORTFOLIO_PLAN_CANDIDATES: tuple[str, ...] = (
    "single_node",
    "heft",
    "peft",
    "cpop",
    "data_locality",
)


@dataclass(frozen=True)
class PortfolioChoice:
    """The plan portfolio's answer for one problem.

    Attributes:
        name: The winning plan (``"heft_lookahead"`` when the rule wins; ``"<name> (own
            order)"`` for a candidate's own plan replayed in the environment's order).
        makespan: The winning plan's makespan [s] in the environment's order.
        rule_makespan: The rule's own plan's makespan [s] in that order.
        nodes: The winning plan's node of every task.
    """

    name: str
    makespan: float
    rule_makespan: float
    nodes: NDArray[np.int64]


def play(
    problem: Problem,
    priority: NDArray[np.float64],
    choose: Callable[[PlanBuilder, int], int],
    *,
    insertion: bool = True,
) -> PlanBuilder:
    """A plan of ``problem``: every task in ``priority`` order, on the node ``choose(b, t)``
    gives (a list schedule, like the environment's episodes)."""
    b = PlanBuilder(problem, insertion=insertion)
    q = ReadyQueue(b, priority)
    while not b.done:
        t = q.pop()
        b.assign(t, choose(b, t))
        q.update()
    return b


def _acted(
    problem: Problem, sch: Scheduler, priority: NDArray[np.float64], insertion: bool
) -> PlanBuilder:
    sch._ensure(problem)
    return play(problem, priority, sch.select_node, insertion=insertion)


def _follow(nodes: NDArray[np.int64]) -> Callable[[PlanBuilder, int], int]:
    """A ``choose`` for :func:`play` that puts every task on ``nodes[task]``."""
    return lambda b, t: int(nodes[t])


def plan_portfolio(
    problem: Problem,
    candidates: Sequence[str] = PORTFOLIO_PLAN_CANDIDATES,
    *,
    insertion: bool = True,
    priority: NDArray[np.float64] | None = None,
    tie: float = TIE_RTOL,
    improve: int = 0,
    improve_k: int = 2,
    follow: bool = False,
) -> PortfolioChoice:
    """The shortest of :data:`HINT_RULE`'s plan and the candidates' plans, in the environment's
    task order (see the module docstring), optionally made shorter by pilot passes. Computed
    once per problem, insertion policy, order, candidate list and improvement, and kept in the
    problem's cache.

    Args:
        problem: The problem.
        candidates: Registered scheduler names compared with the rule.
        insertion: The plan builder's insertion policy (the environment's).
        priority: The environment's task priorities (default: the ``rank`` order,
            :func:`~wass_env.sim.ordering.task_priority`).
        tie: Relative tolerance under which two makespans count as equal.
        improve: Pilot passes over the winning plan (:func:`wass_env.sim.improve.improve_plan`;
            0: none). Where they make it shorter by more than ``tie`` the choice is named
            ``"<winner>+improved"`` and holds the improved plan; never longer than without.
        improve_k: Earliest-finish nodes the passes try per task (besides the data-local ones).
        follow: With ``improve``, also the passes that move a task with its followers
            (:func:`wass_env.sim.improve.improve_plan`'s ``follow``).
    """
    if priority is None:
        priority = task_priority(problem, "rank")
    priority = np.asarray(priority, dtype=np.float64)
    key = f"plan_portfolio:{insertion}:{','.join(candidates)}:{tie}:{hash(priority.tobytes())}"
    if improve > 0:
        base = plan_portfolio(problem, candidates, insertion=insertion, priority=priority, tie=tie)
        key += f":improve{int(improve)}x{int(improve_k)}{':follow' if follow else ''}"
        hit = problem._cache.get(key)
        if hit is None:
            nodes, span, _ = improve_plan(
                problem,
                base.nodes,
                priority,
                k=improve_k,
                insertion=insertion,
                passes=improve,
                follow=follow,
            )
            hit = base
            if span < base.makespan * (1.0 - tie):
                hit = PortfolioChoice(f"{base.name}+improved", span, base.rule_makespan, nodes)
                hit.nodes.setflags(write=False)
            problem._cache[key] = hit
        return hit  # type: ignore[no-any-return]
    hit = problem._cache.get(key)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    rule = _acted(problem, make_scheduler(HINT_RULE), priority, insertion)
    names = [HINT_RULE]
    plans = [rule.node.astype(np.int64)]
    spans = [float(rule.max_finish)]
    for name in candidates:
        sch = make_scheduler(name)
        acted = _acted(problem, sch, priority, insertion)
        names.append(name)
        plans.append(acted.node.astype(np.int64))
        spans.append(float(acted.max_finish))
        own = np.asarray(sch.plan(problem, insertion=insertion).node, dtype=np.int64)
        if not np.array_equal(own, plans[-1]):
            replayed = play(problem, priority, _follow(own), insertion=insertion)
            names.append(f"{name} (own order)")
            plans.append(own)
            spans.append(float(replayed.max_finish))
    i = argmin_first(np.asarray(spans), tie)
    choice = PortfolioChoice(names[i], spans[i], spans[0], plans[i])
    choice.nodes.setflags(write=False)
    problem._cache[key] = choice
    return choice
