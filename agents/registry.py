"""Every scheduler by its short name, for configs, tables and command lines.

The registry itself lives in :mod:`wass_env.scheduling` (below the environment, the agents and the
teacher); this module is its public face for users of :mod:`agents`. The names of the schedulers
in this package are declared in ``pyproject.toml`` (entry-point group ``wass.schedulers``).

Example::

    from agents.registry import make_scheduler

    plan = make_scheduler("heft").plan(problem)
    optimum = make_scheduler("cpsat", time_limit=5.0).plan(small_problem)
"""

from __future__ import annotations

from wass_env.scheduling import (
    SCHEDULERS,
    UnknownSchedulerError,
    make_scheduler,
    register_scheduler,
    scheduler_names,
)

__all__ = [
    "SCHEDULERS",
    "UnknownSchedulerError",
    "make_scheduler",
    "register_scheduler",
    "scheduler_names",
]
