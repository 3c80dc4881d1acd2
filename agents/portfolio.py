"""The best heuristic per instance: what a careful engineer would run before trusting a policy.

:class:`BestHeuristicScheduler` plans each problem with several heuristics and keeps the
shortest plan. It is the bar a learned scheduler must clear to be worth its training: beating
HEFT alone is not enough when PEFT, CPOP or the one-node plan already do better on that
instance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from agents.heuristics import TIE_RTOL
from wass_env.envs.hints import PORTFOLIO_PLAN_CANDIDATES, plan_portfolio
from wass_env.scheduling import Scheduler, make_scheduler
from wass_env.sim.execute import realize
from wass_env.sim.ordering import TASK_ORDERS, task_priority
from wass_env.sim.plan import Plan, PlanBuilder
from wass_env.sim.problem import Problem

__all__ = [
    "DEFAULT_CANDIDATES",
    "PORTFOLIO_CANDIDATES",
    "BestHeuristicScheduler",
    "PlanPortfolioScheduler",
    "PortfolioScheduler",
]

#: The heuristics :class:`BestHeuristicScheduler` chooses from by default, in tie-break order.
DEFAULT_CANDIDATES: tuple[str, ...] = ("heft", "peft", "cpop", "data_locality", "single_node")
#: The two plans :class:`PortfolioScheduler` chooses between (the plan hints' two schedulers).
PORTFOLIO_CANDIDATES: tuple[str, ...] = ("heft_lookahead", "single_node")


class BestHeuristicScheduler(Scheduler):
    """Per instance, the shortest plan among several heuristics.

    Args:
        candidates: Scheduler specs (registered names or ``_target_`` mappings), in tie-break
            order: of plans with equal makespans (within a relative 1e-9) the first listed wins.
            Default :data:`DEFAULT_CANDIDATES`.
        seed: Seed passed on to the candidates on :meth:`reset`.

    ``plan(problem)`` plans with every candidate and returns the shortest plan (shortest
    executed, :func:`~wass_env.sim.execute.realize`: under a NIC network model the plans'
    own times are contention-free estimates). Step-wise
    (``select_node(builder, task)``, ``act``): the candidates plan the whole problem once (per
    problem and insertion policy), and each task goes to the node the best plan gave it. When
    the environment presents tasks in another order than the best plan's, the result can differ
    from that plan (the nodes are the same, the start times follow the order).

    Attributes:
        last_choice: Name of the candidate whose plan won on the last problem ("" before any).
    """

    name: ClassVar[str] = "best_heuristic"

    def __init__(
        self,
        candidates: Sequence[str | Mapping[str, Any]] = DEFAULT_CANDIDATES,
        seed: int | None = None,
    ) -> None:
        if not candidates:
            raise ValueError("best_heuristic needs at least one candidate scheduler")
        self.candidates = [make_scheduler(c) for c in candidates]
        super().__init__(seed)

    def reset(self, seed: int | None = None) -> None:
        """Re-seed every candidate and forget the cached plans."""
        super().reset(seed)
        for c in getattr(self, "candidates", ()):
            c.reset(seed)
        self._best: dict[bool, Plan] = {}
        self.last_choice = ""

    def begin(self, problem: Problem) -> None:
        """Forget the plans of the previous problem."""
        self._best = {}

    def _choose(self, problem: Problem, insertion: bool) -> Plan:
        self._ensure(problem)
        if insertion not in self._best:
            best: Plan | None = None
            best_ms = float("inf")
            for c in self.candidates:
                plan = c.plan(problem, insertion=insertion)
                # The executed makespan: under a NIC network a plan's own times are
                # contention-free estimates (realize is the plan itself otherwise).
                ms = realize(plan).makespan
                if best is None or ms < best_ms * (1.0 - TIE_RTOL):
                    best, best_ms, self.last_choice = plan, ms, c.name
            assert best is not None  # there is at least one candidate
            self._best[insertion] = best
        return self._best[insertion]

    def plan(self, problem: Problem, *, insertion: bool = True) -> Plan:
        """The shortest of the candidates' plans (ties: the first candidate listed)."""
        return self._choose(problem, insertion)

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The node the best plan of the builder's problem gives ``task``."""
        return int(self._choose(builder.problem, builder.insertion).node[task])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({[c.name for c in self.candidates]})"


class PortfolioScheduler(BestHeuristicScheduler):
    """Per instance, the shorter of HEFT with lookahead's plan and the one-node plan.

    The rule the ``portfolio`` imitation expert follows, and what a policy trained with the plan
    hints (``env.plan_hints=true``) plays before any training: its gated prior follows the
    one-node plan where that plan is shorter and HEFT with lookahead elsewhere. Evaluations list
    it so that a trained policy is compared with its own starting point. Ties go to HEFT with
    lookahead.

    Args:
        candidates: As for :class:`BestHeuristicScheduler`; default
            :data:`PORTFOLIO_CANDIDATES`.
        seed: Seed passed on to the candidates on :meth:`reset`.
    """

    name: ClassVar[str] = "portfolio"

    def __init__(
        self,
        candidates: Sequence[str | Mapping[str, Any]] = PORTFOLIO_CANDIDATES,
        seed: int | None = None,
    ) -> None:
        super().__init__(candidates, seed)


class PlanPortfolioScheduler(Scheduler):
    """Per instance, the shortest of HEFT with lookahead's plan and several candidates' plans,
    each judged in the environment's task order (:func:`wass_env.envs.hints.plan_portfolio`).

    What a policy trained with the plan hints and ``env.plan_hint_candidates`` plays before any
    training: its gated prior follows the winning candidate's plan where one is strictly
    shorter than HEFT with lookahead's and HEFT with lookahead elsewhere. Evaluations list it so
    that such a policy is compared with its own starting point. With HEFT among the candidates
    it is never longer than HEFT's plan in that order.

    Args:
        candidates: Registered scheduler names (default
            :data:`~wass_env.envs.hints.PORTFOLIO_PLAN_CANDIDATES`).
        task_order: The environment's task order the plans are judged in (``rank``, ``fifo``).
        seed: Unused (the candidates are deterministic); accepted like every scheduler's.
        improve: Pilot passes over the winning plan (``env.plan_hint_improve``,
            :mod:`wass_env.sim.improve`); default :attr:`default_improve`.
        follow: With ``improve``, also the passes that move a task with its followers
            (``env.plan_hint_follow``); default :attr:`default_follow`.

    Attributes:
        last_choice: Name of the plan that won on the last problem ("" before any).
    """

    name: ClassVar[str] = "plan_portfolio"
    #: Pilot passes over the winning plan when ``improve`` is not given.
    default_improve: ClassVar[int] = 0
    #: Whether the passes also move followers when ``follow`` is not given.
    default_follow: ClassVar[bool] = False

    def __init__(
        self,
        candidates: Sequence[str] = PORTFOLIO_PLAN_CANDIDATES,
        task_order: str = "rank",
        seed: int | None = None,
        improve: int | None = None,
        follow: bool | None = None,
    ) -> None:
        self.candidates = tuple(str(c) for c in candidates)
        if task_order not in TASK_ORDERS:
            raise ValueError(f"task_order must be one of {TASK_ORDERS}, got {task_order!r}")
        self.task_order = task_order
        self.improve = self.default_improve if improve is None else int(improve)
        if not 0 <= self.improve <= 100:
            raise ValueError(f"improve must be an integer in [0, 100], got {improve!r}")
        self.follow = (self.default_follow if follow is None else bool(follow)) and self.improve > 0
        super().__init__(seed)
        self.last_choice = ""

    def _choice(self, problem: Problem, insertion: bool) -> Any:
        self._ensure(problem)
        choice = plan_portfolio(
            problem,
            self.candidates,
            insertion=insertion,
            priority=task_priority(problem, self.task_order),
            improve=self.improve,
            follow=self.follow,
        )
        self.last_choice = choice.name
        return choice

    def priority(self, problem: Problem) -> Any:
        """The environment's task order: the order the winning plan was judged in."""
        return task_priority(problem, self.task_order)

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The node the winning plan gives ``task``."""
        return int(self._choice(builder.problem, builder.insertion).nodes[task])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({list(self.candidates)}, improve={self.improve}, "
            f"follow={self.follow})"
        )


class ImprovedPortfolioScheduler(PlanPortfolioScheduler):
    """The plan portfolio's plan made shorter by up to three pilot passes
    (:func:`wass_env.sim.improve.improve_plan`: per task the 2 earliest-finish and the
    data-local nodes, the rest of the plan kept, a change kept only where the whole plan gets
    shorter), then up to three that also move each task's followers along: never longer than
    :class:`PlanPortfolioScheduler`'s plan. What a policy trained with
    ``env.plan_hint_improve=3 env.plan_hint_follow=true`` (the defaults of ``conf/train.yaml``)
    plays before any training; ``follow=False`` is the plain passes alone.
    """

    name: ClassVar[str] = "improved_portfolio"
    default_improve: ClassVar[int] = 3
    default_follow: ClassVar[bool] = True
