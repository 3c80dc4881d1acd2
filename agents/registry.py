"""Every scheduler by its short name, for configs, tables and command lines.

Example::

    from agents.registry import make_scheduler

    plan = make_scheduler("heft").plan(problem)
    optimum = make_scheduler("cpsat", time_limit=5.0).plan(small_problem)
"""

from __future__ import annotations

from typing import Any

from agents.base import Scheduler
from agents.baselines import RandomScheduler, SlurmScheduler
from agents.cpsat import CPSATScheduler
from agents.heft import CPOPScheduler, HEFTScheduler, PEFTScheduler
from agents.heuristics import DataLocalityScheduler, RoundRobinScheduler
from agents.minmin import MaxMinScheduler, MinMinScheduler

__all__ = ["SCHEDULERS", "UnknownSchedulerError", "make_scheduler"]

#: Scheduler classes by short name (each class's ``name``).
SCHEDULERS: dict[str, type[Scheduler]] = {
    cls.name: cls
    for cls in (
        RandomScheduler,
        RoundRobinScheduler,
        SlurmScheduler,
        DataLocalityScheduler,
        HEFTScheduler,
        CPOPScheduler,
        PEFTScheduler,
        MinMinScheduler,
        MaxMinScheduler,
        CPSATScheduler,
    )
}


class UnknownSchedulerError(ValueError):
    """Raised for a scheduler name that is not in :data:`SCHEDULERS`."""


def make_scheduler(name: str, **kwargs: Any) -> Scheduler:
    """A new scheduler by short name.

    Args:
        name: One of the keys of :data:`SCHEDULERS` (``"heft"``, ``"min_min"``, ...).
        **kwargs: Passed to the scheduler's constructor (``seed=...``, ``time_limit=...``).

    Raises:
        UnknownSchedulerError: if ``name`` is not a known scheduler (the message lists them).
    """
    try:
        cls = SCHEDULERS[name]
    except (KeyError, TypeError):
        raise UnknownSchedulerError(
            f"unknown scheduler {name!r}; valid names: {', '.join(sorted(SCHEDULERS))}"
        ) from None
    return cls(**kwargs)
