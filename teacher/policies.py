"""Policies that seed the knowledge base: the heuristics of :mod:`agents`, optionally perturbed.

A policy spec is a scheduler name from :data:`agents.registry.SCHEDULERS`, optionally followed by
``~eps``: ``"heft"``, ``"data_locality~0.2"``. With ``~eps`` each decision goes, with probability
``eps``, to a uniformly random feasible node instead (an epsilon-random deviation), so that the
knowledge base also holds runs near, but not on, the heuristic's path, and the predictor sees the
effect of other choices in states that good policies visit.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from agents.registry import make_scheduler
from wass_env.errors import WassError
from wass_env.scheduling import Scheduler
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["EpsilonScheduler", "PolicySpecError", "make_policy", "parse_policy"]


class PolicySpecError(WassError):
    """A policy spec is malformed or names an unknown scheduler."""


class EpsilonScheduler(Scheduler):
    """A base scheduler that deviates to a random feasible node with probability ``eps``.

    Args:
        base: The scheduler to perturb.
        eps: Deviation probability, in [0, 1].
        seed: Seed of the deviations (the base scheduler is re-seeded from it too).
    """

    name: ClassVar[str] = "epsilon"

    def __init__(self, base: Scheduler, eps: float, seed: int | None = None) -> None:
        if not 0.0 <= eps <= 1.0:
            raise PolicySpecError(f"eps must be in [0, 1], got {eps!r}")
        self.base = base
        self.eps = float(eps)
        self.task_order = base.task_order
        super().__init__(seed)

    def reset(self, seed: int | None = None) -> None:
        """Re-seed the deviations and the base scheduler."""
        super().reset(seed)
        self.base.reset(None if seed is None else int(self.rng.integers(2**63)))

    def begin(self, problem: Problem) -> None:
        """Prepare the base scheduler for ``problem``."""
        self.base.begin(problem)

    def priority(self, problem: Problem) -> np.ndarray:
        """The base scheduler's task priority."""
        return self.base.priority(problem)

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The base scheduler's node, or with probability ``eps`` a random feasible one."""
        if self.eps > 0 and self.rng.random() < self.eps:
            feasible = np.flatnonzero(builder.problem.fits[task])
            return int(feasible[self.rng.integers(feasible.size)])
        return self.base.select_node(builder, task)

    def __repr__(self) -> str:
        return f"EpsilonScheduler({self.base!r}, eps={self.eps})"


def parse_policy(spec: str) -> tuple[str, float]:
    """``"heft~0.2"`` -> ``("heft", 0.2)``; ``"heft"`` -> ``("heft", 0.0)``.

    Raises:
        PolicySpecError: on a malformed epsilon.
    """
    name, sep, eps_s = str(spec).partition("~")
    if not sep:
        return name, 0.0
    try:
        eps = float(eps_s)
    except ValueError:
        raise PolicySpecError(f"policy {spec!r}: epsilon {eps_s!r} is not a number") from None
    if not 0.0 <= eps <= 1.0:
        raise PolicySpecError(f"policy {spec!r}: epsilon must be in [0, 1], got {eps}")
    return name, eps


def make_policy(spec: str, seed: int | None = None) -> Scheduler:
    """A scheduler from a policy spec (see the module docstring), seeded.

    Raises:
        PolicySpecError: if the spec is malformed or the scheduler unknown.
    """
    name, eps = parse_policy(spec)
    try:
        base = make_scheduler(name, seed=seed)
    except ValueError as exc:
        raise PolicySpecError(f"policy {spec!r}: {exc}") from None
    if eps == 0.0:
        return base
    return EpsilonScheduler(base, eps, seed=seed)
