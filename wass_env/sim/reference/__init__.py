"""Reference simulators to cross-check :mod:`wass_env.sim` against (not imported by it).

:func:`replay` executes plans in SimGrid, the simulation core under WRENCH, through a subprocess
of the interpreter that has SimGrid's Python bindings; see :mod:`.simgrid_replay`.
"""

from wass_env.sim.reference.cases import TIME_FLOOR, Agreement, agreement, stress_workflow
from wass_env.sim.reference.simgrid_replay import (
    DEFAULT_CONFIG,
    FULL_UPDATE,
    REFERENCE_SPEED,
    SIMGRID_PYTHON_ENV,
    ReferenceRun,
    SimGridError,
    SimGridUnavailable,
    plan_case,
    replay,
    simgrid_available,
    simgrid_python,
    simgrid_version,
)

__all__ = [
    "DEFAULT_CONFIG",
    "FULL_UPDATE",
    "REFERENCE_SPEED",
    "SIMGRID_PYTHON_ENV",
    "TIME_FLOOR",
    "Agreement",
    "ReferenceRun",
    "SimGridError",
    "SimGridUnavailable",
    "agreement",
    "plan_case",
    "replay",
    "simgrid_available",
    "simgrid_python",
    "simgrid_version",
    "stress_workflow",
]
