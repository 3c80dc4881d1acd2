"""Policies that seed the knowledge base: schedulers of :mod:`agents`, a rollout expert, trained
checkpoints, optionally perturbed.

A policy spec is one of:

* a registered scheduler name (``"heft"``, ``"heft_lookahead"``, ``"best_heuristic"``,
  ``"cpsat"``, ...);
* ``"pilot"`` or ``"pilot<k>"`` (``"pilot2"``): :class:`PilotScheduler`, the rollout expert of
  :mod:`agents.imitation` acting: at every decision the ``k`` earliest-finish nodes (plus HEFT's
  own node and the data-local ones) are each completed with HEFT and the shortest completed plan
  wins, a schedule never worse than HEFT's and often much better;
* ``"policy:PATH"`` or ``"policy+rollout<k>:PATH"``: a trained checkpoint through the ``policy``
  scheduler (:class:`agents.learned.PolicyScheduler`), raw or in its rollout mode;
* ``"teacher:DIR"``: the greedy teacher of ``DIR/kb.wkb`` and ``DIR/model.wtm``
  (:class:`~teacher.teacher.TeacherScheduler`): its own runs, branched, show the next teacher
  the states it reaches and what its choices there lead to (as DAgger does for a policy);

each optionally followed by ``~eps`` (before the ``:PATH`` of a checkpoint): ``"heft~0.2"``,
``"policy~0.1:runs/x/model.zip"``. With ``~eps`` each decision goes, with probability ``eps``, to
a uniformly random feasible node instead (an epsilon-random deviation), so that the knowledge
base also holds runs near, but not on, the policy's path, and the predictor sees the effect of
other choices in states that good policies visit.

The spec is what the knowledge base records as the run's policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from agents.imitation import PilotExpert
from agents.registry import make_scheduler
from wass_env.errors import WassError
from wass_env.scheduling import Scheduler
from wass_env.sim.ordering import task_priority
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = [
    "EpsilonScheduler",
    "PilotScheduler",
    "PolicySpec",
    "PolicySpecError",
    "is_deterministic",
    "make_policy",
    "parse_policy",
]

_PILOT = re.compile(r"pilot(\d*)")
_ROLLOUT = re.compile(r"policy(?:\+rollout(\d+))?")
#: Schedulers whose choices depend on their random generator.
_RANDOMISED = frozenset({"random"})


class PolicySpecError(WassError):
    """A policy spec is malformed or names an unknown scheduler."""


@dataclass(frozen=True)
class PolicySpec:
    """A parsed policy spec (see the module docstring).

    Attributes:
        name: Scheduler name (``"heft"``, ``"pilot"``, ``"policy"``, ...).
        eps: Deviation probability.
        k: Candidates of a pilot, or rollout proposals of a checkpoint (0: none).
        checkpoint: Checkpoint path of a ``policy`` spec (the directory of a ``teacher``).
    """

    name: str
    eps: float = 0.0
    k: int = 0
    checkpoint: str | None = None

    @property
    def deterministic(self) -> bool:
        """Whether the same partial plan always gets the same node."""
        return self.eps == 0.0 and self.name not in _RANDOMISED


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


class PilotScheduler(Scheduler):
    """The rollout expert of :mod:`agents.imitation` as a scheduler (a pilot method).

    At every decision :meth:`~agents.imitation.PilotExpert.scores` completes the task's ``k``
    earliest-finish nodes, the base heuristic's own node and the data-local nodes with the base
    heuristic (in the base's task order) and the node of the shortest completed plan is taken
    (ties: the lowest index). Because the base's own node is always tried, the plan is never
    longer than the base's.

    Args:
        k: Earliest-finish candidates per decision.
        base: The heuristic completing the rollouts (``"heft"``).
        seed: Unused (the policy is deterministic); kept for the scheduler interface.

    Attributes:
        last_scores: Completed makespan [s] per node of the last decision (``inf`` where not
            tried): the knowledge base reads them as counterfactual outcomes.
    """

    name: ClassVar[str] = "pilot"

    def __init__(self, k: int = 4, base: str = "heft", seed: int | None = None) -> None:
        self.expert = PilotExpert(k=k, base=base)
        self.base_name = str(base)
        self.last_scores: NDArray[np.float64] | None = None
        self._priority: NDArray[np.float64] | None = None
        super().__init__(seed)

    def begin(self, problem: Problem) -> None:
        """Compute the completion order of ``problem``."""
        self._priority = task_priority(problem, self.expert.base.task_order)

    def priority(self, problem: Problem) -> NDArray[np.float64]:
        """The base heuristic's task order."""
        return self.expert.base.priority(problem)

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The node whose completed plan is shortest."""
        self._ensure(builder.problem)
        assert self._priority is not None
        scores = self.expert.scores(builder, task, self._priority)
        self.last_scores = scores
        return int(np.argmin(scores))

    def __repr__(self) -> str:
        return f"PilotScheduler(k={self.expert.k}, base={self.base_name!r})"


def parse_policy(spec: str) -> PolicySpec:
    """A policy spec's parts: ``"heft~0.2"`` -> ``PolicySpec("heft", 0.2)``,
    ``"pilot2"`` -> ``PolicySpec("pilot", k=2)``, ``"policy+rollout2:m.zip"`` ->
    ``PolicySpec("policy", k=2, checkpoint="m.zip")``.

    Raises:
        PolicySpecError: on a malformed epsilon, size or checkpoint.
    """
    text = str(spec)
    head, colon, path = text.partition(":")
    name, sep, eps_s = head.partition("~")
    eps = 0.0
    if sep:
        try:
            eps = float(eps_s)
        except ValueError:
            raise PolicySpecError(f"policy {spec!r}: epsilon {eps_s!r} is not a number") from None
        if not 0.0 <= eps <= 1.0:
            raise PolicySpecError(f"policy {spec!r}: epsilon must be in [0, 1], got {eps}")
    if name == "teacher":
        if not path:
            raise PolicySpecError(f"policy {spec!r}: a teacher spec is 'teacher:DIR'")
        return PolicySpec("teacher", eps, 0, path)
    if colon or name.startswith("policy"):
        m = _ROLLOUT.fullmatch(name)
        if m is None:
            raise PolicySpecError(
                f"policy {spec!r}: a checkpoint spec is 'policy:PATH' or 'policy+rollout<k>:PATH'"
            )
        if not path:
            raise PolicySpecError(f"policy {spec!r}: names no checkpoint after ':'")
        return PolicySpec("policy", eps, int(m.group(1) or 0), path)
    m = _PILOT.fullmatch(name)
    if m is not None:
        k = int(m.group(1) or 4)
        if k < 1:
            raise PolicySpecError(f"policy {spec!r}: a pilot needs k >= 1 candidates")
        return PolicySpec("pilot", eps, k)
    return PolicySpec(name, eps)


def is_deterministic(spec: str) -> bool:
    """Whether a policy spec always makes the same decision in the same partial plan."""
    return parse_policy(spec).deterministic


def make_policy(spec: str, seed: int | None = None, **kwargs: object) -> Scheduler:
    """A scheduler from a policy spec (see the module docstring), seeded.

    Args:
        spec: The policy spec.
        seed: Seed of the scheduler and its deviations.
        **kwargs: Extra arguments of a registered scheduler (``time_limit=`` for ``cpsat``).

    Raises:
        PolicySpecError: if the spec is malformed, the scheduler unknown or a checkpoint
            cannot be loaded.
    """
    p = parse_policy(spec)
    try:
        if p.name == "pilot":
            base: Scheduler = PilotScheduler(k=p.k, seed=seed)
        elif p.name == "policy":
            base = make_scheduler("policy", checkpoint=p.checkpoint, rollout=p.k, seed=seed)
        elif p.name == "teacher":
            from pathlib import Path

            d = Path(str(p.checkpoint))
            base = make_scheduler("teacher", kb=d / "kb.wkb", model=d / "model.wtm", seed=seed)
        else:
            base = make_scheduler(p.name, seed=seed, **kwargs)
    except (ValueError, OSError, TypeError) as exc:
        raise PolicySpecError(f"policy {spec!r}: {exc}") from None
    except WassError as exc:
        raise PolicySpecError(f"policy {spec!r}: {exc}") from None
    if p.eps == 0.0:
        return base
    return EpsilonScheduler(base, p.eps, seed=seed)
